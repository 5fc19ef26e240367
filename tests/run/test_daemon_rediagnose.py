"""New evidence during an open incident: the daemon diagnoses it again and the alert says what changed."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from snapwatch.config import AlertsConfig, Config
from snapwatch.ingest.tokens import fingerprint
from snapwatch.run.daemon import Daemon
from tests.helpers.clock import Clock, seconds
from tests.helpers.contradictions import contradictions
from tests.helpers.daemon import stop, streak_config
from tests.helpers.peers import Backend, Hook
from tests.helpers.tokens import assert_no_secret, make_canvas_token
from tests.helpers.wait import until

OLD, NEW = make_canvas_token(seed="old"), make_canvas_token(nbf=1764900000, seed="new")
T0 = datetime(2025, 12, 5, 10, 0, 0, tzinfo=UTC)


def _config(tmp: Path, hook: Hook, env_file: Path) -> Config:
    alerts = AlertsConfig(urls=[f"json://127.0.0.1:{hook.port}/hook"], group_wait=timedelta(milliseconds=300),
                          repeat_every=timedelta(days=1), timeout=timedelta(seconds=2))
    return streak_config(tmp / "capi.log", tmp / "state", env_file, alerts)


async def _run(tmp: Path) -> tuple[list[dict[str, object]], io.StringIO]:
    hook, backend = Hook(), Backend(tmp / "capi.log", name="snapwatch.tests.rediagnose")
    env_file = tmp / ".env"
    env_file.write_text(f"SNAP_ACCESS_TOKEN={OLD}\n", encoding="utf-8")
    console = io.StringIO()
    daemon = Daemon(_config(tmp, hook, env_file), None, environ={}, host="web-1", flush_after=0.2, console=console)
    task = asyncio.create_task(daemon.run())
    try:
        backend.calls(OLD, [200] * 5 + [401] * 6, seconds(T0, 11))
        first = await asyncio.to_thread(hook.wait_for, 1, 10.0)
        # Someone regenerates the token and updates the .env; the backend keeps sending the old one: a
        # request logged after the change shows it (one logged before could not have known).
        env_file.write_text(f"SNAP_ACCESS_TOKEN={NEW}\n", encoding="utf-8")
        backend.calls(OLD, [401], [_after_now()])
        both = await asyncio.to_thread(hook.wait_for, 2, 10.0)
        assert first[0] == both[0]
        return [body for _, body in both], console
    finally:
        await stop(daemon, task)
        backend.close()
        hook.stop()


def _after_now() -> datetime:
    """A log time in a later second than now (the log's times are whole seconds)."""
    return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)


def test_a_new_token_in_the_env_file_turns_the_verdict_into_drift(tmp_path: Path) -> None:
    bodies, console = asyncio.run(_run(tmp_path))
    opened, update = (str(b.get("title", "")) + "\n" + str(b.get("message", "")) for b in bodies)
    # Opened: the backend sends the configured token, which Snap accepted until the streak: revoked.
    assert "token-revoked" in opened.split("\n")[0] and "token-previously-accepted" in opened
    assert "token-drift" not in opened
    # Then the .env holds a token the backend does not send: the verdict is drift, with the fix.
    assert "token-drift" in update.split("\n")[0]
    for body in bodies:
        assert contradictions(str(body.get("message", ""))) == []
    assert fingerprint(NEW) in update and fingerprint(OLD) in update
    assert_no_secret(json.dumps(bodies) + console.getvalue(), OLD, NEW)


def test_systemd_is_asked_off_the_loop_and_its_answer_strengthens_the_verdict(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow systemctl (2 s here) must not hold the loop: the update arrives first, the answer later."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    started = int(time.time()) - 3600  # the backend's unit started an hour ago, before the new .env
    script = bindir / "systemctl"
    script.write_text(f'#!/bin/sh\nsleep 2\nprintf "%s\\n" "@{started}"\n', encoding="utf-8")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")

    async def main() -> tuple[float, bool | None, str]:
        hook, backend = Hook(), Backend(tmp_path / "capi.log", name="snapwatch.tests.rediagnose2")
        env_file = tmp_path / ".env"
        env_file.write_text(f"SNAP_ACCESS_TOKEN={OLD}\n", encoding="utf-8")
        config = _config(tmp_path, hook, env_file)
        config = dataclasses.replace(config, token=dataclasses.replace(config.token, service="shop.service"))
        daemon = Daemon(config, None, environ={}, host="web-1", flush_after=0.2, console=io.StringIO())
        task = asyncio.create_task(daemon.run())
        try:
            backend.calls(OLD, [200] * 5 + [401] * 6, seconds(T0, 11))
            await asyncio.to_thread(hook.wait_for, 1, 10.0)
            env_file.write_text(f"SNAP_ACCESS_TOKEN={NEW}\n", encoding="utf-8")
            written = time.monotonic()
            backend.calls(OLD, [401], [_after_now()])
            await asyncio.to_thread(hook.wait_for, 2, 10.0)
            update_after = time.monotonic() - written
            deadline = time.monotonic() + 10
            while daemon.investigator.context.restart_pending is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            verdict = next(iter(daemon.investigator.verdicts.values()))
            return update_after, daemon.investigator.context.restart_pending, verdict
        finally:
            await stop(daemon, task)
            backend.close()
            hook.stop()

    update_after, pending, verdict = asyncio.run(main())
    assert update_after < 1.8  # the 2 s systemctl did not hold the loop
    assert pending is True and verdict == "token-drift"


def test_evidence_is_current_when_the_alert_goes_out(tmp_path: Path) -> None:
    """A rate-limited incident opens at its 5th 429; more come before its OPENED alert is due. The alert's
    counts and its evidence say how many there are when it goes out, not how many there were at the opening."""
    hook, backend = Hook(), Backend(tmp_path / "capi.log", name="snapwatch.tests.current")
    env_file = tmp_path / ".env"
    env_file.write_text(f"SNAP_ACCESS_TOKEN={OLD}\n", encoding="utf-8")
    clock = Clock(T0 + timedelta(minutes=1))
    config = _config(tmp_path, hook, env_file)

    async def main() -> dict[str, object]:
        daemon = Daemon(config, None, clock=clock, environ={}, host="web-1", flush_after=0.2, console=io.StringIO())
        task = asyncio.create_task(daemon.run())
        try:
            backend.calls(OLD, [200] * 5 + [429] * 5, seconds(T0, 10))
            await until(lambda: daemon.investigator.verdicts != {}, what="the incident")
            backend.calls(OLD, [429] * 7, seconds(T0, 7, first=10))

            def counted() -> int:
                return sum(i.responses for s in daemon.sources.values() for f in s.files.values()
                           for i in f.pipeline.detector.open_incidents())

            await until(lambda: counted() == 12, what="all twelve 429s counted")
            clock.at += timedelta(seconds=5)  # past group_wait: the OPENED alert is due now
            [(_, body)] = await asyncio.to_thread(hook.wait_for, 1, 10.0)
            return body
        finally:
            await stop(daemon, task)
            backend.close()
            hook.stop()

    body = asyncio.run(main())
    title, message = str(body["title"]), str(body["message"])
    assert title.startswith("[snapwatch] FIRING rate-limited on web-1 (12 failed)"), title
    assert "Failed responses: 12 (429: 12)" in message
    assert "12 responses with HTTP 429 between 2025-12-05T10:00:05+00:00 and 2025-12-05T10:00:16+00:00" in message
