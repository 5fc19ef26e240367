"""Two daemons on one state directory would count and alert everything twice: the second one exits 75."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from tests.helpers.cli import snapwatch_process
from tests.helpers.clock import seconds
from tests.helpers.daemon import write_config
from tests.helpers.peers import Backend, free_port
from tests.helpers.process import READY, DaemonProcess, status_json
from tests.helpers.tokens import make_canvas_token
from tests.helpers.wait import wait_until

TOKEN = make_canvas_token(seed="lock")
T0 = datetime(2025, 12, 6, 9, 0, 0, tzinfo=UTC)


def test_a_second_run_exits_75_naming_the_first_and_reading_still_works(tmp_path: Path) -> None:
    log = tmp_path / "capi.log"
    backend = Backend(log, name="snapwatch.tests.faults.lock")
    backend.calls(TOKEN, [200] * 4, seconds(T0, 4))
    # The first serves metrics: the second must not fail on the address before it finds the lock.
    config = write_config(tmp_path / "config.yaml", [log], tmp_path / "state", timezone="UTC",
                          extra=f"metrics:\n  listen: 127.0.0.1:{free_port()}\n")
    first = DaemonProcess(config)
    try:
        first.wait_for(READY, 30)
        second = snapwatch_process("run", "-c", str(config), timeout=30)
        assert second.returncode == 75, second.stderr
        lines = second.stderr.splitlines()
        assert len(lines) == 1, second.stderr
        assert f"pid {first.proc.pid}" in lines[0] and str(tmp_path / "state") in lines[0]
        # check-config while the service runs: its metrics address is in use by that very daemon, not a mistake.
        checked = snapwatch_process("check-config", "-c", str(config))
        assert checked.returncode == 0, checked.stderr
        # The read-only commands do not need the lock.
        wait_until(lambda: _responses(config) == {"200": 4}, "the first daemon to count the backlog")
        diagnose = snapwatch_process("diagnose", "--json", "-c", str(config))
        assert diagnose.returncode == 0, diagnose.stderr
        assert "findings" in json.loads(diagnose.stdout)
        backend.calls(TOKEN, [200] * 2, seconds(T0, 2, first=10))
        wait_until(lambda: _responses(config) == {"200": 6}, "the first daemon to go on counting, alone")
        code, _ = first.terminate()
    finally:
        backend.close()
        if first.proc.poll() is None:
            first.kill()
    assert code == 0, first.output()
    again = DaemonProcess(config)  # once the first is gone, the state directory is free again
    try:
        again.wait_for(READY, 30)
        code, _ = again.terminate()
    finally:
        if again.proc.poll() is None:
            again.kill()
    assert code == 0, again.output()
    assert _responses(config) == {"200": 6}


def _responses(config: Path) -> dict[str, int]:
    sources = status_json(config)["sources"]
    assert isinstance(sources, list)
    return {k: v for s in sources for k, v in s["responses"].items()}
