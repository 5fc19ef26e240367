"""Daemons hand incidents to a real Alertmanager: one group across hosts, re-posted while open, ended on recovery."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from snapwatch.alert.alertmanager import GROUP_LABELS, AlertmanagerTarget, ResendSchedule
from snapwatch.alert.messages import render
from snapwatch.config import AlertsConfig, Config
from snapwatch.ingest import tokens
from snapwatch.model import Alert, AlertKind, Incident, Rule, TokenKind
from snapwatch.run.daemon import Daemon
from snapwatch.run.telemetry import Reposter
from snapwatch.synthetic import DEFAULT_PIXEL, Call, demo_token
from tests.helpers.alertmanager_peer import Alertmanagers, HeldProxy, active_alerts, get_json
from tests.helpers.clock import seconds
from tests.helpers.daemon import stop, streak_config
from tests.helpers.exchanges import exchange
from tests.helpers.peers import Backend
from tests.helpers.tokens import assert_no_secret
from tests.helpers.wait import until

TOKEN = demo_token(seed="fleet-live")
FP = tokens.fingerprint(TOKEN)
HOSTS = ("host-a", "host-b")
VERDICT = "token-revoked"  # the same token was accepted until the 401s began, nothing else changed
REPOST_EVERY = timedelta(seconds=1)  # instead of the minute Alertmanager's resolve_timeout needs
AM_CONFIG = f"""\
route:
  receiver: "null"
  group_by: [{", ".join(GROUP_LABELS)}]
  group_wait: 1s
receivers:
  - name: "null"
"""


def host_config(folder: Path, am_url: str, *, send_resolved: bool = True) -> Config:
    folder.mkdir()
    env_file = folder / ".env"
    env_file.write_text(f"SNAP_ACCESS_TOKEN={TOKEN}\nSNAP_PIXEL_ID={DEFAULT_PIXEL}\n")
    alerts = AlertsConfig(
        alertmanager=[am_url],
        group_wait=timedelta(milliseconds=200),
        repeat_every=timedelta(days=1),
        send_resolved=send_resolved,
        timeout=timedelta(seconds=2),
    )
    return streak_config(folder / "capi.log", folder / "state", env_file, alerts)


def stamp(alert: dict[str, Any], field: str) -> datetime:
    return datetime.fromisoformat(alert[field])


def by_host(alerts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {a["labels"]["host"]: a for a in alerts}


def test_two_hosts_one_group_reposted_while_open_ended_on_recovery(tmp_path: Path) -> None:
    seen: list[str] = []  # every API answer, checked for the token at the end
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    at = seconds(t0, 13)
    writers: list[Backend] = []

    with Alertmanagers(tmp_path, AM_CONFIG) as peers:
        am = peers.start("single", ["--cluster.listen-address="])
        configs = {host: host_config(tmp_path / host, am.url) for host in HOSTS}

        def alerts() -> list[dict[str, Any]]:
            found = active_alerts(am.url)
            seen.append(json.dumps(found))
            return found

        def groups() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = get_json(am.url, "/api/v2/alerts/groups")
            seen.append(json.dumps(found))
            return found

        async def scenario() -> None:
            daemons = {h: Daemon(c, None, environ={}, host=h, flush_after=0.2) for h, c in configs.items()}
            for d in daemons.values():
                assert d.reposter is not None  # alerts.alertmanager is set
                d.reposter.schedule = ResendSchedule(REPOST_EVERY)
            tasks = [asyncio.create_task(d.run()) for d in daemons.values()]
            try:
                for i, host in enumerate(HOSTS):
                    writers.append(Backend(tmp_path / host / "capi.log", f"snapwatch.tests.fleet.{host}"))
                    shift = timedelta(milliseconds=300 * i)  # the hosts' logs are not in lockstep
                    calls = [Call("PURCHASE", 200, TOKEN)] * 4 + [Call("PURCHASE", 401, TOKEN)] * 6
                    writers[-1].write(calls, [t + shift for t in at[:10]])

                # The same incident on both hosts: two active alerts with the grouping labels, one group.
                await until(lambda: len(alerts()) == 2, "both hosts' alerts in Alertmanager", off_loop=True)
                firing = by_host(alerts())
                assert sorted(firing) == list(HOSTS)
                for host, alert in firing.items():
                    labels = alert["labels"]
                    assert {k: labels.get(k) for k in (*GROUP_LABELS, "host")} == {
                        "alertname": "SnapCapiIncident",
                        "rule": "auth-failures",
                        "verdict": VERDICT,
                        "pixel": DEFAULT_PIXEL,
                        "token_fingerprint": FP,
                        "host": host,
                    }
                    notes = alert["annotations"]
                    assert host in notes["summary"] and FP in notes["evidence"] and notes["remediation"]
                    assert stamp(alert, "endsAt") > stamp(alert, "updatedAt")  # open: Alertmanager keeps it until told
                for d in daemons.values():
                    assert list(d.investigator.verdicts.values()) == [VERDICT]

                def one_group() -> bool:
                    found = groups()
                    return len(found) == 1 and sorted(a["labels"]["host"] for a in found[0]["alerts"]) == list(HOSTS)

                await until(one_group, "one alert group across both hosts", off_loop=True)
                assert groups()[0]["labels"] == {k: firing["host-a"]["labels"][k] for k in GROUP_LABELS}

                # While open, each daemon re-posts its alert (Reposter), not through the outbox.
                first = {h: stamp(firing[h], "updatedAt") for h in HOSTS}
                await until(
                    lambda: all(stamp(by_host(alerts())[h], "updatedAt") > first[h] for h in HOSTS),
                    "a re-post of each open alert",
                    timeout=3 * REPOST_EVERY.total_seconds() + 2,
                    off_loop=True,
                )
                for d in daemons.values():
                    assert d.outbox.counts().get("delivered") == 1 and not d.outbox.counts().get("pending")
                assert len(alerts()) == 2  # re-posts refresh the alerts, they add none

                # Recovery on both hosts ends both alerts.
                for writer in writers:
                    writer.write([Call("PURCHASE", 200, TOKEN)] * 3, at[10:13])
                await until(lambda: alerts() == [], "the alerts to end", off_loop=True)
                for d in daemons.values():
                    assert d.outbox.counts().get("delivered") == 2
                    assert d.reposter is not None and not d.reposter.open_messages

                def reposts_settled() -> bool:
                    return all(
                        d.reposter is not None and (d.reposter._task is None or d.reposter._task.done())
                        for d in daemons.values()
                    )

                await until(reposts_settled, "re-posts in flight to finish", off_loop=True)
                assert alerts() == []  # no late re-post revived an ended alert
            finally:
                for d in daemons.values():
                    d.stop_requested.set()
                assert await asyncio.wait_for(asyncio.gather(*tasks), 15) == [0, 0]

        try:
            asyncio.run(scenario())
        finally:
            for writer in writers:
                writer.close()
        am_log = am.log.read_text()

    assert seen
    for text in (*seen, am_log):
        assert_no_secret(text, TOKEN)


def _alert(source: str, kind: AlertKind, at: datetime) -> Alert:
    first = exchange(at, 401, "{}", pixel=DEFAULT_PIXEL, fp=FP, source=source)
    resolved = at if kind is AlertKind.RESOLVED else None
    incident = Incident(f"inc-{source}", Rule.AUTH_FAILURES, source, at, resolved, 5, (("401", 5),), at, first)
    return Alert(f"{source}-{kind.value}", kind, at, "host-a", incident, None, FP, TokenKind.CANVAS_S2S)


def test_a_repost_never_revives_an_alert_that_ended_meanwhile(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    opened = {s: _alert(s, AlertKind.OPENED, now) for s in ("one.log", "two.log")}
    ended = {s: _alert(s, AlertKind.RESOLVED, now) for s in opened}
    with Alertmanagers(tmp_path, AM_CONFIG) as peers:
        am = peers.start("single", ["--cluster.listen-address="])
        direct = AlertmanagerTarget([am.url])  # the outbox's path
        proxy = HeldProxy(am.url)
        try:
            reposter = Reposter(AlertmanagerTarget([proxy.url]), timeout=10)
            reposter.schedule = ResendSchedule(timedelta(0))  # every open incident is due at every tick

            async def scenario() -> None:
                for alert in opened.values():
                    message = render(alert)
                    direct.send(message, 5)
                    reposter.handed_out(alert, message, now)
                assert len(active_alerts(am.url)) == 2
                reposter.tick(now)  # re-posts one.log's alert, then two.log's: the first is held in flight
                assert await asyncio.to_thread(proxy.arrived.wait, 10)
                for alert in ended.values():  # both incidents resolve while the re-post is in flight
                    message = render(alert)
                    reposter.handed_out(alert, message, now)
                    await asyncio.to_thread(direct.send, message, 5)
                assert active_alerts(am.url) == []
                proxy.release.set()
                assert reposter._task is not None
                await asyncio.wait_for(reposter._task, 15)

            asyncio.run(scenario())
        finally:
            proxy.stop()
        # one.log's re-post landed after its end, and was ended again; two.log's was never sent.
        assert active_alerts(am.url) == []
        posted = [json.loads(body)[0] for body in proxy.forwarded]
        assert [(a["labels"]["source"], "endsAt" in a) for a in posted] == [("one.log", False), ("one.log", True)]


def test_without_send_resolved_reposts_stop_and_alertmanager_times_the_alert_out(tmp_path: Path) -> None:
    # No resolution is posted, so the alert ends only once re-posts stop and resolve_timeout passes.
    config_text = AM_CONFIG + "global:\n  resolve_timeout: 2s\n"
    with Alertmanagers(tmp_path, config_text) as peers:
        am = peers.start("single", ["--cluster.listen-address="])
        config = host_config(tmp_path / "host-a", am.url, send_resolved=False)
        writer = Backend(tmp_path / "host-a" / "capi.log", "snapwatch.tests.fleet.quiet")
        t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
        at = seconds(t0, 12)

        async def scenario() -> None:
            daemon = Daemon(config, None, environ={}, host="host-a", flush_after=0.2)
            reposter = daemon.reposter
            assert reposter is not None
            reposter.schedule = ResendSchedule(timedelta(milliseconds=500))
            task = asyncio.create_task(daemon.run())
            try:
                writer.write([Call("PURCHASE", 200, TOKEN)] * 3 + [Call("PURCHASE", 401, TOKEN)] * 6, at[:9])
                await until(lambda: len(active_alerts(am.url)) == 1, "the alert in Alertmanager", off_loop=True)
                writer.write([Call("PURCHASE", 200, TOKEN)] * 3, at[9:12])
                await until(lambda: not reposter.open_messages, "re-posts to stop once the incident resolved",
                            off_loop=True)
                await until(lambda: active_alerts(am.url) == [], "Alertmanager to time the alert out", off_loop=True)
                assert daemon.outbox.counts().get("delivered") == 1  # the opened alert only
            finally:
                await stop(daemon, task)

        try:
            asyncio.run(scenario())
        finally:
            writer.close()
