"""No silent losses: a copytruncate regrown alike, a file rotated before its first read, backups deleted unread."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from snapwatch.synthetic import Call
from tests.helpers.clock import seconds
from tests.helpers.daemon import write_config
from tests.helpers.peers import Backend
from tests.helpers.process import READY, DaemonProcess, status_json
from tests.helpers.tokens import make_canvas_token
from tests.helpers.wait import wait_until

OLD = make_canvas_token(seed="old")
NEW = make_canvas_token(seed="new")  # as long as OLD: the calls that carry it are as long as the others
T0 = datetime(2025, 12, 6, 9, 0, 0, tzinfo=UTC)


def _write(log: Path, calls: list[Call], at: list[datetime]) -> None:
    backend = Backend(log, name=f"snapwatch.tests.faults.losses.{log.name}")
    backend.write(calls, at)
    backend.close()


@contextmanager
def _running(config: Path) -> Iterator[DaemonProcess]:
    daemon = DaemonProcess(config)
    try:
        daemon.wait_for(READY, 30)
        yield daemon
        code, _ = daemon.terminate()
        assert code == 0, daemon.output()
    finally:
        if daemon.proc.poll() is None:
            daemon.kill()


@contextmanager
def _behind(daemon: DaemonProcess) -> Iterator[None]:
    """The daemon does not run meanwhile (a busy machine, a long catch-up): it looks again only afterwards."""
    daemon.proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        daemon.proc.send_signal(signal.SIGCONT)


@pytest.mark.parametrize("when", ["while-running", "while-stopped"])
def test_a_copytruncate_regrown_past_the_offset_within_the_second_is_read_again(tmp_path: Path, when: str) -> None:
    log = tmp_path / "capi.log"
    same_second = [T0] * 30  # a busy second: the lines near the old offset are byte for byte the lines before
    _write(log, [Call("PURCHASE", 200, OLD)] * 25, same_second[:25])
    config = write_config(tmp_path / "config.yaml", [log], tmp_path / "state", timezone="UTC")

    def copytruncate_and_regrow() -> None:
        shutil.copyfile(log, tmp_path / "capi.log.1")
        os.truncate(log, 0)
        # The backend goes on in the same second, first with a new token, past the old offset.
        _write(log, [Call("PURCHASE", 200, NEW)] * 5 + [Call("PURCHASE", 200, OLD)] * 25, same_second)

    with _running(config) as daemon:
        wait_until(lambda: _total(config) == 25, "the first 25 responses")
        if when == "while-running":
            with _behind(daemon):
                copytruncate_and_regrow()
            wait_until(lambda: _total(config) == 55, "the regrown file to be read from its start")
    if when == "while-stopped":
        copytruncate_and_regrow()
        with _running(config):
            wait_until(lambda: _total(config) == 55, "the regrown file to be read from its start")
    assert _total(config) == 55
    assert status_json(config)["log_gaps"] == []


def test_a_file_that_appears_and_rotates_before_its_first_read_is_read_from_its_backup(tmp_path: Path) -> None:
    log = tmp_path / "capi.log"
    config = write_config(tmp_path / "config.yaml", [log], tmp_path / "state", timezone="UTC")
    with _running(config) as daemon:
        assert any("waiting for it to appear" in line for line in daemon.lines), daemon.output()
        with _behind(daemon):
            _write(log, [Call("PURCHASE", 200, OLD)] * 10, seconds(T0, 10))
            log.rename(tmp_path / "capi.log.1")
            _write(log, [Call("PURCHASE", 401, OLD)] * 5, seconds(T0, 5, first=10))
        wait_until(lambda: _total(config) == 15, "both files: the backup first, then the new file")
    assert _by_status(config) == {"200": 10, "401": 5}
    assert status_json(config)["log_gaps"] == []


def test_backups_rotated_and_deleted_unread_while_behind_are_a_log_gap(tmp_path: Path) -> None:
    log = tmp_path / "capi.log"
    backup = tmp_path / "capi.log.1"
    _write(log, [Call("PURCHASE", 200, OLD)] * 5, seconds(T0, 5))
    config = write_config(tmp_path / "config.yaml", [log], tmp_path / "state", timezone="UTC")

    def rotate(n: int, first: int) -> None:
        """RotatingFileHandler with backupCount=1: the backup deleted, the live file renamed, a new one."""
        if backup.exists():
            backup.unlink()
        log.rename(backup)
        _write(log, [Call("PURCHASE", 200, OLD)] * n, seconds(T0, n, first=first))
        time.sleep(0.2)  # rotations some time apart, as a busy backend's are

    with _running(config) as daemon:
        wait_until(lambda: _total(config) == 5, "the first five")
        with _behind(daemon):
            _write(log, [Call("PURCHASE", 200, OLD)] * 3, seconds(T0, 3, first=5))  # still in the open file
            rotate(4, 10)  # these four are deleted by the third rotation before anyone reads them
            rotate(6, 20)
            rotate(2, 30)
        wait_until(lambda: _total(config) == 5 + 3 + 6 + 2, "everything still there to be read")
        wait_until(lambda: bool(status_json(config)["log_gaps"]), "the loss to be reported")
    gaps = status_json(config)["log_gaps"]
    assert isinstance(gaps, list) and len(gaps) == 1, gaps
    assert gaps[0]["path"] == str(log) and "deleted unread" in gaps[0]["reason"]
    assert _total(config) == 16


def _by_status(config: Path) -> dict[str, int]:
    sources = status_json(config)["sources"]
    assert isinstance(sources, list)
    counts: dict[str, int] = {}
    for s in sources:
        for status, n in s["responses"].items():
            counts[status] = counts.get(status, 0) + n
    return counts


def _total(config: Path) -> int:
    return sum(_by_status(config).values())
