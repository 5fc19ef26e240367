"""A FIFO or a character device as a source is refused with one line; the other sources keep running, SIGTERM stops."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.helpers.cli import snapwatch_process
from tests.helpers.clock import seconds
from tests.helpers.daemon import write_config
from tests.helpers.peers import Backend
from tests.helpers.process import READY, DaemonProcess, status_json
from tests.helpers.tokens import make_canvas_token
from tests.helpers.wait import wait_until

TOKEN = make_canvas_token(seed="fifo")
T0 = datetime(2025, 12, 6, 9, 0, 0, tzinfo=UTC)


def test_a_fifo_and_dev_zero_are_refused_while_the_healthy_source_is_followed(tmp_path: Path) -> None:
    fifo = tmp_path / "capi-fifo.log"
    os.mkfifo(fifo)
    log = tmp_path / "capi.log"
    backend = Backend(log, name="snapwatch.tests.faults.fifo")
    backend.calls(TOKEN, [200] * 3, seconds(T0, 3))
    config = write_config(tmp_path / "config.yaml", [fifo, Path("/dev/zero"), log], tmp_path / "state",
                          timezone="UTC")
    daemon = DaemonProcess(config)
    try:
        daemon.wait_for(READY, 30)
        refused = [line for line in daemon.lines if "not a regular file" in line]
        assert any("a FIFO" in line and str(fifo) in line for line in refused), daemon.output()
        assert any("a character device" in line and "/dev/zero" in line for line in refused), daemon.output()
        backend.calls(TOKEN, [200] * 2, seconds(T0, 2, first=10))
        wait_until(lambda: _responses(config, log) == {"200": 5}, "the healthy source to be followed")
        code, took = daemon.terminate(timeout=30)
    finally:
        backend.close()
        if daemon.proc.poll() is None:
            daemon.kill()
    assert code == 0, daemon.output()
    assert took < 10
    assert len([line for line in daemon.lines if "not a regular file" in line]) == 2  # said once each


def test_scan_refuses_a_fifo_instead_of_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "capi.log"
    os.mkfifo(fifo)
    started = time.monotonic()
    done = snapwatch_process("scan", "--json", str(fifo), timeout=30)
    assert time.monotonic() - started < 30
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and "a FIFO, not a regular file" in done.stderr and str(fifo) in done.stderr
    done = snapwatch_process("scan", "--json", "/dev/zero", timeout=30)
    assert done.returncode == 1 and "a character device" in done.stderr, done.stderr


def _responses(config: Path, log: Path) -> dict[str, int]:
    sources = status_json(config)["sources"]
    assert isinstance(sources, list)
    found = [s["responses"] for s in sources if s["path"] == str(log)]
    return found[0] if found else {}


