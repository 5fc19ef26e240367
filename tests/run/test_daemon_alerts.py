"""Alerts that arrive: the daemon following a real file, delivering to webhook and SMTP peers on loopback."""

from __future__ import annotations

import asyncio
import email
import logging
import re
import sqlite3
from collections import Counter
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path
from typing import Any

import pytest

from snapwatch.alert.notify import AppriseTarget, Notifier
from snapwatch.alert.policy import AlertPolicy
from snapwatch.config import AlertsConfig, Config, SourceConfig
from snapwatch.detect.pipeline import SourcePipeline
from snapwatch.ingest import tokens
from snapwatch.model import TransitionKind
from snapwatch.run.daemon import Daemon
from snapwatch.run.evidence import diagnose_incident, load_context
from snapwatch.store.outbox import Outbox
from snapwatch.synthetic import demo_token
from tests.helpers.clock import Clock, seconds
from tests.helpers.contradictions import contradictions, said_in
from tests.helpers.daemon import stop, streak_config
from tests.helpers.peers import HOOK_SECRET, SMTP_PASSWORD, Backend, Hook, Mailbox, free_port, smtp_server
from tests.helpers.tokens import assert_no_secret
from tests.helpers.wait import until

OLD = demo_token(seed="old-live")  # what the backend still sends
NEW = demo_token(nbf=1764900000, seed="new-live")  # what its .env holds now
NEW_FP = tokens.fingerprint(NEW)
HOST = "web-7"


def make_config(tmp: Path, urls: list[str]) -> Config:
    env_file = tmp / ".env"
    env_file.write_text(f"SNAP_ACCESS_TOKEN={NEW}\nSNAP_PIXEL_ID=5bf81ee1-15b1-4dc1-b636-d7dae49b950e\n")
    alerts = AlertsConfig(urls=urls, group_wait=timedelta(0), repeat_every=timedelta(days=1),
                          timeout=timedelta(seconds=2))
    return streak_config(tmp / "capi.log", tmp / "state", env_file, alerts, service="shop.service")


class Running:
    """One daemon process's lifetime inside the test's event loop."""

    def __init__(self, config: Config, clock: Clock) -> None:
        self.daemon = Daemon(config, None, clock=clock, environ={}, host=HOST, flush_after=0.1)
        self.task = asyncio.get_running_loop().create_task(self.daemon.run())

    def outbox(self, state: str) -> int:
        return self.daemon.outbox.counts()[state]

    def attempts(self) -> int:
        return int(self.daemon.store.conn.execute("SELECT COALESCE(SUM(attempts), 0) FROM outbox").fetchone()[0])

    async def stop(self) -> None:
        await stop(self.daemon, self.task)


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


def test_streak_alerts_webhooks_and_email_then_resolves_without_leaking(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    hook, box = Hook(), Mailbox()
    t0 = datetime.now(UTC).replace(microsecond=0)
    with smtp_server(box) as smtp_port:
        urls = [
            f"json://127.0.0.1:{hook.port}/hook",
            f"mmost://127.0.0.1:{hook.port}/{HOOK_SECRET}",
            f"mailto://ops:{SMTP_PASSWORD}@127.0.0.1:{smtp_port}?to=oncall@example.com&from=snapwatch@example.com",
        ]
        config = make_config(tmp_path, urls)
        backend = Backend(tmp_path / "capi.log")

        async def scenario() -> None:
            running = Running(config, Clock(t0 + timedelta(seconds=20)))
            backend.calls(OLD, [200] * 4 + [401] * 6, seconds(t0, 10))
            await asyncio.to_thread(hook.wait_for, 2)
            await asyncio.to_thread(box.wait_for, 1)
            backend.calls(NEW, [200] * 3, seconds(t0, 3, first=10))
            await asyncio.to_thread(hook.wait_for, 4)
            await asyncio.to_thread(box.wait_for, 2)
            await running.stop()

        try:
            run(scenario)
        finally:
            backend.close()
            hook.stop()
    assert len(hook.received) == 4 and len(box.messages) == 2  # nothing more than owed
    by_kind: dict[str, list[tuple[str, str, str]]] = {"FIRING": [], "RESOLVED": []}
    for path, body in hook.received:
        title, text = (body["title"], body["message"]) if path == "/hook" else (body.get("title", ""), body["text"])
        by_kind["RESOLVED" if "RESOLVED" in (title + text[:200]) else "FIRING"].append((path, title, text))
    for raw in box.messages:
        mail = email.message_from_bytes(raw, policy=policy.default)
        plain = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        kind = "RESOLVED" if "RESOLVED" in mail["Subject"] else "FIRING"
        by_kind[kind].append(("mail", mail["Subject"], plain))
    every_target = sorted(["/hook", f"/hooks/{HOOK_SECRET}", "mail"])  # targets deliver concurrently
    assert sorted(p for p, _, _ in by_kind["FIRING"]) == every_target
    assert sorted(p for p, _, _ in by_kind["RESOLVED"]) == every_target
    for path, title, text in by_kind["FIRING"]:
        if path == "mail":  # the subject a phone's lock screen shows whole
            assert title == f"[snapwatch] FIRING auth-failures on {HOST}: token-drift", title
        elif path != f"/hooks/{HOOK_SECRET}":  # Mattermost puts the title into the text
            assert title.startswith(f"[snapwatch] FIRING auth-failures on {HOST} (6 failed):"), title
        assert "token-drift" in text and "The backend still sends an old token" in text
        assert re.search(r"1\. Restart the backend so it loads the token", text), text
        assert re.search(r"2\. Then check that requests carry token " + NEW_FP, text), text
        assert f"fingerprint {NEW_FP} (canvas-s2s)" in text
    for path, title, text in by_kind["RESOLVED"]:
        if path == "mail":
            assert title == f"[snapwatch] RESOLVED auth-failures on {HOST}: token-drift", title
        elif path != f"/hooks/{HOOK_SECRET}":
            assert title == f"[snapwatch] RESOLVED auth-failures on {HOST} after 8s (6 failed responses)", title
        assert "resolved after 8s; 6 responses failed" in text
    for _, _, text in by_kind["FIRING"] + by_kind["RESOLVED"]:  # read back (so the check bites), consistent
        assert said_in(text).verdict == "token-drift", text
        assert contradictions(text) == [], text
    same_id = {re.findall(r"id ([0-9a-f]{32}) \(opened", text)[0] for _, _, text in by_kind["FIRING"]}
    assert len(same_id) == 1  # one alert, one id, on every target
    state = b"".join(p.read_bytes() for p in (tmp_path / "state").iterdir() if p.is_file())
    assert NEW_FP.encode() in state  # the store does hold what the alerts said...
    received = repr([body for _, body in hook.received]) + "".join(m.decode("utf-8", "replace") for m in box.messages)
    for text in (received, state, caplog.text):  # ...but never a token, the webhook key or the password
        assert_no_secret(text, OLD, NEW, HOOK_SECRET, SMTP_PASSWORD)


def test_outage_with_two_restarts_delivers_every_owed_alert_once_in_order(tmp_path: Path) -> None:
    """Incident A is reported in full while the webhook is up. The webhook goes down; incident B opens,
    the daemon is restarted twice while B is open and then resolved, and the webhook comes back on the
    same port: B's OPENED and RESOLVED alerts arrive, in that order, once each, and nothing about A."""
    port = free_port()
    config = make_config(tmp_path, [f"json://127.0.0.1:{port}/hook"])
    backend = Backend(tmp_path / "capi.log")
    t0 = datetime.now(UTC).replace(microsecond=0)
    clock = Clock(t0)
    hook = Hook(port)
    before: list[tuple[str, dict[str, Any]]] = []

    async def scenario() -> None:
        nonlocal hook
        first = Running(config, clock)
        backend.calls(OLD, [401] * 5 + [200] * 3, seconds(t0, 8))  # incident A, start to end
        await asyncio.to_thread(hook.wait_for, 2)
        before.extend(hook.received)
        hook.stop()  # the outage begins
        clock.at = t0 + timedelta(seconds=20)
        backend.calls(OLD, [401] * 5, seconds(t0, 5, first=20))  # incident B opens
        await until(lambda: first.attempts() >= 1, what="a failed attempt at B's OPENED alert")
        await first.stop()  # restart 1
        second = Running(config, clock)
        clock.at = t0 + timedelta(minutes=5)  # past the first backoff: the daemon tries again, and fails
        await until(lambda: second.attempts() >= 2, what="a second failed attempt")
        backend.calls(OLD, [401] * 3, seconds(t0, 3, first=300))
        await second.stop()  # restart 2
        third = Running(config, clock)
        backend.calls(NEW, [200] * 3, seconds(t0, 3, first=310))  # B resolves: its RESOLVED queues behind OPENED
        await until(lambda: third.outbox("pending") == 2, what="B's RESOLVED alert queued")
        assert third.outbox("delivered") == 2 and not hook.received[2:]
        hook = Hook(port)  # the webhook is back
        clock.at = t0 + timedelta(hours=1)
        await asyncio.to_thread(hook.wait_for, 2, 15.0)
        await until(lambda: third.outbox("delivered") == 4, what="the outbox marked both delivered")
        await third.stop()

    try:
        run(scenario)
    finally:
        backend.close()
        hook.stop()
    kinds = [body["title"].split()[1] for _, body in before]
    assert kinds == ["FIRING", "RESOLVED"]  # incident A, fully reported before the outage
    after = [body for _, body in hook.received]
    assert [b["title"].split()[1] for b in after] == ["FIRING", "RESOLVED"]
    assert "(5 failed)" in after[0]["title"]  # rendered when it was owed, at the start of the outage
    assert after[1]["title"].endswith("(8 failed responses)")  # B: 5 + 3 failures across the restarts
    ids = [re.findall(r"id ([0-9a-f]{32}) \((opened|resolved)", b["message"])[0]
           for b in [body for _, body in before] + after]
    assert [k for _, k in ids] == ["opened", "resolved"] * 2
    assert len({i for i, _ in ids}) == 4  # four alerts, each delivered exactly once
    assert all(f"Since: {(t0 + timedelta(seconds=20)).isoformat()}" in b["message"] for b in after)


def test_an_hour_of_flapping_yields_a_bounded_readable_set_of_messages(tmp_path: Path) -> None:
    """An hour of log in which Snap answers 401 for 15 s, then 200 for 5 s, over and over (180 flaps).

    The config (group_wait 10 s; the defaults max_per_hour 20, send_resolved) gives exactly 21 messages:
    the first 10 auth-failures incidents are announced and their 10 resolutions sent (the error-rate
    incidents that open beside them are folded into them by the default inhibit rule: one problem, one
    message); that fills the hourly cap, which keeps a slot for every owed RESOLVED. The 170 alerts owed
    to the later flaps are held back, and once the first hand-outs leave the sliding hour ONE message
    says "170 alert(s) held back". Each flap lasts longer than group_wait, so none is swallowed: this is
    the worst case for the cap (shorter flaps would be absorbed by group_wait).

    Driven at the pipeline level, with the daemon's own glue (SourcePipeline → AlertPolicy → Outbox →
    Notifier → a real webhook), so that every step runs at the log time of its record: the daemon reads
    its clock per event batch, and replaying an hour of log through it in real time is not practical.
    """
    hook = Hook()
    t0 = datetime(2025, 12, 3, 9, 0, tzinfo=UTC)
    log_path = tmp_path / "capi.log"
    backend = Backend(log_path)
    offsets, times = [0], []
    for i in range(3600):
        at = t0 + timedelta(seconds=i)
        backend.calls(OLD, [401 if i % 20 < 15 else 200], [at])
        offsets.append(log_path.stat().st_size)
        times.append(at)
    backend.close()
    data = log_path.read_bytes()
    config = Config(sources=[SourceConfig(path=str(log_path), timezone="UTC")],
                    alerts=AlertsConfig(urls=[f"json://127.0.0.1:{hook.port}/hook"], group_wait=timedelta(seconds=10)))
    pipeline = SourcePipeline(config.sources[0], config.rules)
    conn = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    policy = AlertPolicy(conn, config.alerts, HOST)
    notifier = Notifier(Outbox(conn), [AppriseTarget(config.alerts.urls[0])], timeout=5)
    context = load_context(config.token, {})
    transitions: Counter[tuple[str, str]] = Counter()

    def step(now: datetime) -> None:
        conn.execute("BEGIN IMMEDIATE")
        alerts = policy.due(now)
        for alert in alerts:
            notifier.enqueue(alert, now)
        conn.execute("COMMIT")
        if alerts:
            assert notifier.deliver_due_sync(now).delivered == len(alerts)

    try:
        for k, now in enumerate(times):
            for t in pipeline.feed(data[offsets[k]:offsets[k + 1]]).transitions:
                transitions[(t.incident.rule.value, t.kind.value)] += 1
                opened = t.kind is TransitionKind.OPENED
                diagnosis = diagnose_incident(pipeline.view(), t.incident, context, now) if opened else None
                policy.on_transition(t, diagnosis, now)
            step(now)
        for minute in range(1, 61):  # the log has ended; the daemon's timers keep running for another hour
            step(times[-1] + timedelta(minutes=minute))
        received = hook.wait_for(21)
    finally:
        notifier.close()
        conn.close()
        hook.stop()
    assert transitions[("auth-failures", "opened")] == 180 and transitions[("auth-failures", "resolved")] == 180
    titles = [body["title"] for _, body in received]
    words = Counter(title.split()[1] for title in titles)
    assert len(titles) == 21 and words == {"FIRING": 10, "RESOLVED": 10, "HELD": 1}, titles
    assert all("auth-failures" in title for title in titles[:-1])  # error-rate is folded, never announced
    assert titles[-1] == f"[snapwatch] HELD BACK 170 alert(s) held back on {HOST} (max_per_hour reached)"
    assert all(len(title) <= 250 for title in titles)
    ids = [re.findall(r"id ([0-9a-f]{32}) ", body["message"])[0] for _, body in received]
    assert len(set(ids)) == 21
