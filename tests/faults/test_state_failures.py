"""A state directory that cannot be written (full, read-only, locked): said once, alerted, counted, waited out."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers.clock import seconds
from tests.helpers.daemon import write_config
from tests.helpers.metrics import scrape, value
from tests.helpers.mounts import fill, remount, tmpfs
from tests.helpers.peers import Backend, Hook, free_port
from tests.helpers.process import READY, DaemonProcess, status_json
from tests.helpers.tokens import make_canvas_token
from tests.helpers.wait import wait_until

TOKEN = make_canvas_token(seed="full")
T0 = datetime(2025, 12, 6, 9, 0, 0, tzinfo=UTC)


@contextmanager
def _disk_full(state: Path) -> Iterator[None]:
    filler = fill(state)
    yield
    filler.unlink()


@contextmanager
def _locked(state: Path) -> Iterator[None]:
    # Another program holding a write lock on the file (sqlite3 state.db, a backup tool).
    other = sqlite3.connect(state / "state.db", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    yield
    other.execute("ROLLBACK")
    other.close()




@pytest.mark.timeout(240)
@pytest.mark.parametrize(("trouble", "reason"), [(_disk_full, "full"), (_locked, "locked")],
                         ids=["disk-full", "locked"])
def test_state_failures_pause_following_alert_once_and_resume_counting_once(
        tmp_path: Path, hook: Hook, trouble: Callable[[Path], contextlib.AbstractContextManager[None]],
        reason: str) -> None:
    log = tmp_path / "capi.log"
    backend = Backend(log, name=f"snapwatch.tests.faults.state.{reason}")
    port = free_port()
    with tmpfs(tmp_path / "state", "2m") as state:
        config = write_config(tmp_path / "config.yaml", [log], state, timezone="UTC", extra=(
            f"alerts:\n  urls: ['json://127.0.0.1:{hook.port}/hook']\nmetrics:\n  listen: 127.0.0.1:{port}\n"))
        written = 0

        def write(n: int) -> None:
            nonlocal written
            backend.calls(TOKEN, [200] * n, seconds(T0, n, first=written))
            written += n

        write(5)
        daemon = DaemonProcess(config)
        try:
            daemon.wait_for(READY, 30)
            wait_until(lambda: _responses(config) == written, "the backlog to be counted")
            with trouble(state):
                deadline = time.monotonic() + 90
                while not any("cannot save its state" in line for line in daemon.lines):
                    assert daemon.proc.poll() is None, daemon.output()
                    assert time.monotonic() < deadline, f"the daemon never failed to save:\n{daemon.output()}"
                    write(5)
                    time.sleep(0.3)
                _, samples = scrape(port)
                assert (value(samples, "snapwatch_state_errors_total", reason=reason) or 0) >= 1
                received = hook.wait_for(1, timeout=30)
                assert any("cannot save its state" in body.get("title", "") for _, body in received), received
                write(7)  # written while nothing can be saved
                time.sleep(2)
                assert daemon.proc.poll() is None, daemon.output()
                said = [line for line in daemon.lines if "cannot save its state" in line]
                assert len(said) == 1, said  # one line, not one per attempt
            daemon.wait_for("saves its state again", 120)
            write(3)
            wait_until(lambda: _responses(config) == written, "everything to be counted once", timeout=60)
            code, took = daemon.terminate(timeout=30)
        finally:
            backend.close()
            if daemon.proc.poll() is None:
                daemon.kill()
        assert code == 0, daemon.output()
        assert took < 15
        assert _responses(config) == written  # nothing counted twice once it could be saved again
        assert "Traceback" not in daemon.output()


def _responses(config: Path) -> int:
    sources = status_json(config)["sources"]
    assert isinstance(sources, list)
    return sum(n for s in sources for n in s["responses"].values())


@pytest.mark.timeout(180)
def test_a_read_only_state_directory_at_start_is_waited_for_and_sigterm_still_stops(tmp_path: Path, hook: Hook) -> None:
    log = tmp_path / "capi.log"
    backend = Backend(log, name="snapwatch.tests.faults.state.ro")
    port = free_port()
    with tmpfs(tmp_path / "state", "2m") as state:
        config = write_config(tmp_path / "config.yaml", [log], state, timezone="UTC", extra=(
            f"alerts:\n  urls: ['json://127.0.0.1:{hook.port}/hook']\nmetrics:\n  listen: 127.0.0.1:{port}\n"))
        backend.calls(TOKEN, [200] * 4, seconds(T0, 4))
        first = DaemonProcess(config)
        first.wait_for(READY, 30)
        wait_until(lambda: _responses(config) == 4, "the first count")
        assert first.terminate()[0] == 0
        backend.calls(TOKEN, [200] * 3, seconds(T0, 3, first=10))
        remount(state, "ro")  # nothing holds a file open now: the remount is allowed
        waiting = DaemonProcess(config)
        try:
            waiting.wait_for("cannot save its state", 30)
            wait_until(lambda: (value(scrape(port)[1], "snapwatch_state_errors_total", reason="read-only") or 0) >= 1,
                       "the state error to be counted")
            received = hook.wait_for(1, timeout=30)
            assert any("cannot save its state" in body.get("title", "") for _, body in received), received
            code, took = waiting.terminate(timeout=30)  # stopped while it waits: at once, cleanly
        finally:
            if waiting.proc.poll() is None:
                waiting.kill()
        assert code == 0 and took < 15, waiting.output()
        waiting = DaemonProcess(config)
        try:
            waiting.wait_for("cannot save its state", 30)
            remount(state, "rw")
            waiting.wait_for(READY, 120)
            wait_until(lambda: _responses(config) == 7, "what was written meanwhile to be counted once")
            code, _ = waiting.terminate(timeout=30)
        finally:
            backend.close()
            if waiting.proc.poll() is None:
                waiting.kill()
        assert code == 0, waiting.output()
        assert _responses(config) == 7
