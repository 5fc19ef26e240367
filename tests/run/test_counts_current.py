"""An open incident's counts are exact when they are reported: in scan (open at the end of the input), in the
daemon's alerts (opened, resolved) and in status, however close together the failures were logged."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers.cli import scan_json
from tests.helpers.daemon import write_config
from tests.helpers.peers import Backend
from tests.helpers.process import READY, DaemonProcess, status_json
from tests.helpers.tokens import make_canvas_token

T0 = datetime(2025, 12, 6, 9, 0, 0, tzinfo=UTC)
FAILED = re.compile(r"\[snapwatch\] (FIRING|RESOLVED) auth-failures on \S+ (?:after \S+ )?\((\d+) failed")


def _write(log: Path, statuses: list[int], at: list[datetime], seed: str = "c") -> None:
    backend = Backend(log, name=f"snapwatch.tests.counts.{log.parent.name}")
    backend.calls(make_canvas_token(seed=seed), statuses, at)
    backend.close()


def _burst(n: int, start: datetime) -> list[datetime]:
    """``n`` times within two seconds of record time (half in the first, half in the next)."""
    return [start + timedelta(seconds=i * 2 // n) for i in range(n)]


@pytest.mark.parametrize("n", [10, 37])
def test_scan_reports_every_failure_of_an_incident_open_at_the_end(tmp_path: Path, n: int) -> None:
    log = tmp_path / "capi.log"
    _write(log, [200] * 3 + [401] * n, [T0, T0, T0, *_burst(n, T0 + timedelta(seconds=1))])
    config = write_config(tmp_path / "config.yaml", [log], tmp_path / "state", timezone="UTC")
    incidents = scan_json("-c", str(config), str(log))["incidents"]
    assert isinstance(incidents, list)
    [incident] = [i for i in incidents if i["rule"] == "auth-failures"]
    assert incident["resolved_at"] is None
    assert (incident["responses"], incident["by_status"]) == (n, {"401": n})


def _alert(daemon: DaemonProcess, word: str) -> int:
    """The failure count in the daemon's console alert ``word`` (FIRING or RESOLVED) about auth-failures."""
    daemon.wait_for(f"[snapwatch] {word} auth-failures", 30)
    for line in daemon.lines:
        m = FAILED.search(line)
        if m is not None and m.group(1) == word:
            return int(m.group(2))
    raise AssertionError(f"no {word} alert with a count:\n{daemon.output()}")


@pytest.mark.timeout(90)
def test_the_daemon_alerts_and_status_count_every_failure_logged_so_far(tmp_path: Path) -> None:
    log = tmp_path / "capi.log"
    log.touch()
    config = write_config(tmp_path / "config.yaml", [log], tmp_path / "state",
                          "alerts:\n  urls: []\n  group_wait: 1s\n", timezone="UTC")
    daemon = DaemonProcess(config)
    try:
        daemon.wait_for(READY, 30)
        # Ten 401s within two seconds, written at once: the incident opens at the fifth.
        _write(log, [200, 200] + [401] * 10, [T0, T0, *_burst(10, T0 + timedelta(seconds=1))])
        assert _alert(daemon, "FIRING") == 10
        status = status_json(config)
        [open_incident] = status["incidents"]  # type: ignore[misc]
        assert (open_incident["responses"], open_incident["by_status"]) == (10, {"401": 10})
        # Three more in the same second as the last ones, then the recovery.
        last = T0 + timedelta(seconds=2)
        _write(log, [401] * 3 + [200] * 3, [last] * 3 + [last + timedelta(seconds=1)] * 3)
        assert _alert(daemon, "RESOLVED") == 13
    finally:
        code, _ = daemon.terminate()
    assert code == 0, daemon.output()
