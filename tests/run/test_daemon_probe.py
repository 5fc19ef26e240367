"""The daemon's live probe: an auth incident opens, Snap's stand-in answers, the alerts say what it changed."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from snapwatch.config import AlertsConfig, Config, ProbeConfig
from snapwatch.ingest.tokens import fingerprint
from snapwatch.run.daemon import Daemon
from snapwatch.synthetic import DEFAULT_PIXEL
from tests.helpers.clock import Clock, seconds
from tests.helpers.daemon import stop, streak_config
from tests.helpers.peers import Backend, FakeSnap, Hook, snap_server
from tests.helpers.tokens import assert_no_secret, make_canvas_token, snapwatch_records
from tests.helpers.wait import until

TOKEN = make_canvas_token(seed="d")  # well formed, well placed, never accepted in the log
FP = fingerprint(TOKEN)
HOST = "shop-web-3"
T0 = datetime(2025, 12, 5, 10, 0, 0, tzinfo=UTC)  # the log's time
C0 = T0 + timedelta(minutes=1)  # the daemon's clock, moved by the test
GROUP_WAIT = timedelta(seconds=1)
MIN_INTERVAL = timedelta(minutes=5)


@dataclass
class World:
    tmp: Path
    snap: FakeSnap
    hook: Hook
    backend: Backend
    clock: Clock
    console: io.StringIO
    written: int = 0  # calls logged so far, so each new one gets the next second

    def config(self) -> Config:
        env_file = self.tmp / ".env"
        env_file.write_text(f"SNAP_ACCESS_TOKEN={TOKEN}\nSNAP_PIXEL_ID={DEFAULT_PIXEL}\n", encoding="utf-8")
        alerts = AlertsConfig(urls=[f"json://127.0.0.1:{self.hook.port}/hook"], group_wait=GROUP_WAIT,
                              repeat_every=timedelta(days=1), timeout=timedelta(seconds=2))
        probe = ProbeConfig(enabled=True, base_url=self.snap.base_url, min_interval=MIN_INTERVAL,
                            timeout=timedelta(seconds=10))
        return streak_config(self.tmp / "capi.log", self.tmp / "state", env_file, alerts, probe=probe)

    def calls(self, statuses: list[int]) -> None:
        at = seconds(T0, len(statuses), first=self.written)
        self.backend.calls(TOKEN, statuses, at)
        self.written += len(statuses)

    async def alerts(self, n: int) -> list[dict[str, Any]]:
        """The first ``n`` webhook bodies (waits, bounded, for them to arrive)."""
        return [body for _, body in await asyncio.to_thread(self.hook.wait_for, n, 10.0)]

    def assert_clean(self, caplog: pytest.LogCaptureFixture) -> None:
        """No token in anything delivered, logged, printed or stored."""
        assert_no_secret(json.dumps([b for _, b in self.hook.received], ensure_ascii=False), TOKEN)
        for record in snapwatch_records(caplog):
            assert_no_secret(record.getMessage(), TOKEN)
            assert_no_secret(record.exc_text or "", TOKEN)
        assert_no_secret(self.console.getvalue(), TOKEN)
        for stored in (self.tmp / "state").iterdir():
            assert_no_secret(stored.read_bytes(), TOKEN)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    hook = Hook()
    backend = Backend(tmp_path / "capi.log", name="snapwatch.tests.daemon_probe")
    try:
        with snap_server() as snap:
            yield World(tmp_path, snap, hook, backend, Clock(C0), io.StringIO())
    finally:
        backend.close()
        hook.stop()


def start(world: World) -> tuple[Daemon, asyncio.Task[int]]:
    daemon = Daemon(world.config(), None, clock=world.clock, environ={}, host=HOST, flush_after=0.2,
                    console=world.console)
    return daemon, asyncio.get_running_loop().create_task(daemon.run())


def said(caplog: pytest.LogCaptureFixture, words: str) -> int:
    """How many log records so far contain ``words``."""
    return sum(words in r.getMessage() for r in caplog.records)


def probes_said(caplog: pytest.LogCaptureFixture, outcome: str) -> int:
    return said(caplog, f"validate endpoint says {outcome}")


def test_slow_probe_turns_the_verdict_with_one_update_and_is_rate_limited(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    world.snap.hold = 10.0  # Snap answers only when the test releases it: after the OPENED alert went out

    async def scenario() -> None:
        daemon, task = start(world)
        try:
            world.calls([401] * 8)
            await asyncio.to_thread(world.snap.received.wait, 10.0)
            assert world.hook.received == []  # the OPENED alert waits for group_wait on the daemon's clock
            world.clock.at = C0 + 2 * GROUP_WAIT
            [opened] = await world.alerts(1)
            assert opened["title"].startswith(f"[snapwatch] FIRING auth-failures on {HOST}")
            assert "(token-rejected-for-pixel)" in opened["title"]
            assert "probe-" not in opened["message"] and "validate" not in opened["message"]
            world.snap.release.set()
            _, update = await world.alerts(2)
            assert update["title"].startswith(f"[snapwatch] UPDATED auth-failures on {HOST}")
            # A live "accepted" rules the token out: no cause is left, and the title says what is known.
            assert "cause unknown; probe-accepted: " in update["title"]
            assert "Canvas-vs-CAPI mismatch" in update["message"]  # ruled out, and said so
            assert "token-rejected-for-pixel" not in update["message"]

            # Resolve, then the streak comes back within min_interval: no second probe.
            world.calls([200] * 3)
            assert "RESOLVED" in (await world.alerts(3))[2]["title"]
            world.calls([401] * 6)
            await until(lambda: said(caplog, "incident opened:") == 2, "the second incident")
            world.clock.at += 2 * GROUP_WAIT
            assert "FIRING" in (await world.alerts(4))[3]["title"]
            assert len(world.snap.seen) == 1

            # Past min_interval, the next opening probes again.
            world.calls([200] * 3)
            assert "RESOLVED" in (await world.alerts(5))[4]["title"]
            world.clock.at = C0 + MIN_INTERVAL + 2 * GROUP_WAIT
            world.calls([401] * 6)
            await until(lambda: probes_said(caplog, "accepted") == 2, "the second probe's answer")
            world.clock.at += 2 * GROUP_WAIT
            assert "cause unknown; probe-accepted: " in (await world.alerts(6))[5]["title"]
        finally:
            await stop(daemon, task)

    asyncio.run(scenario())
    titles = [body["title"] for _, body in world.hook.received]
    assert sum("UPDATED" in t for t in titles) == 1, titles  # one update, for the one material change
    assert len(world.hook.received) == 6, titles
    assert len(world.snap.seen) == 2  # at most one probe per min_interval
    for seen in world.snap.seen:
        assert seen.path == f"/v3/{DEFAULT_PIXEL}/events/validate"
        assert seen.query == {"access_token": [TOKEN]}
        assert seen.body["data"][0]["event_name"] == "PAGE_VIEW"  # type: ignore[index]
    assert f"probe of token {FP}: accepted" in caplog.text  # logged by fingerprint
    world.assert_clean(caplog)


def test_probe_answered_within_group_wait_goes_out_in_the_opened_alert(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    async def scenario() -> None:
        daemon, task = start(world)
        try:
            world.calls([401] * 8)
            await until(lambda: probes_said(caplog, "accepted") == 1, "the probe's answer")
            assert world.hook.received == []  # group_wait has not passed on the daemon's clock
            world.clock.at = C0 + 2 * GROUP_WAIT
            await world.alerts(1)
        finally:
            await stop(daemon, task)  # shutdown hands out and delivers whatever is still owed

    asyncio.run(scenario())
    [(_, opened)] = world.hook.received  # no UPDATE: the OPENED alert already said it
    assert opened["title"].startswith(f"[snapwatch] FIRING auth-failures on {HOST}")
    assert "cause unknown; probe-accepted: " in opened["title"]
    assert "Canvas-vs-CAPI mismatch" in opened["message"]
    assert len(world.snap.seen) == 1
    world.assert_clean(caplog)


def test_probe_rejection_confirms_the_mismatch(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    world.snap.status = 401
    world.snap.body = json.dumps({"status": "UNAUTHORIZED", "reason": f"token {TOKEN} not valid"})

    async def scenario() -> None:
        daemon, task = start(world)
        try:
            world.calls([401] * 8)
            await until(lambda: probes_said(caplog, "rejected") == 1, "the probe's answer")
            world.clock.at = C0 + 2 * GROUP_WAIT
            await world.alerts(1)
        finally:
            await stop(daemon, task)

    asyncio.run(scenario())
    [(_, opened)] = world.hook.received
    assert "(token-rejected-for-pixel)" in opened["title"]
    assert "high confidence" in opened["message"] and "rejected it" in opened["message"]
    assert "Conversions API Tokens" in opened["message"]
    world.assert_clean(caplog)


def test_a_probe_of_the_old_token_says_nothing_about_a_new_one(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    other = make_canvas_token(nbf=1764700000, seed="e")  # the .env's next token, also never accepted

    async def scenario() -> None:
        daemon, task = start(world)
        try:
            world.calls([401] * 8)
            await until(lambda: probes_said(caplog, "accepted") == 1, "the probe's answer")
            world.clock.at = C0 + 2 * GROUP_WAIT
            await world.alerts(1)
            world.calls([200] * 3)
            await world.alerts(2)
            # The .env gets a new token and the backend sends it; still within min_interval: no new probe.
            env_file = world.tmp / ".env"
            env_file.write_text(f"SNAP_ACCESS_TOKEN={other}\nSNAP_PIXEL_ID={DEFAULT_PIXEL}\n", encoding="utf-8")
            at = seconds(T0, 6, first=world.written)
            world.backend.calls(other, [401] * 6, at)
            await until(lambda: said(caplog, "incident opened:") == 2, "the second incident")
            world.clock.at += 2 * GROUP_WAIT
            await world.alerts(3)
        finally:
            await stop(daemon, task)

    asyncio.run(scenario())
    assert len(world.snap.seen) == 1
    second = world.hook.received[2][1]
    assert second["title"].startswith("[snapwatch] FIRING")
    # Snap accepted the old token: that neither vouches for the new one nor rules its mismatch out.
    assert "probe-accepted" not in second["message"] and "validate" not in second["message"]
    assert "(token-changed)" in second["title"]  # what the log shows: the new token arrived with the 401s
    assert fingerprint(other) in second["message"]
    world.assert_clean(caplog)
    for _, body in world.hook.received:
        assert_no_secret(json.dumps(body), other)
