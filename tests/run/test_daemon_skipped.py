"""What the daemon's parser cannot take at face value is said in the log as it happens, never skipped silently."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from snapwatch.config import Config, SourceConfig
from tests.helpers.daemon import run_daemon_for
from tests.helpers.files import append
from tests.helpers.peers import Backend
from tests.helpers.tokens import make_canvas_token

T0 = datetime(2025, 12, 6, 9, 0, 0, tzinfo=UTC)


def test_invalid_bytes_and_a_response_without_status_are_logged(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    log = tmp_path / "capi.log"
    backend = Backend(log, name="snapwatch.tests.skipped")
    backend.calls(make_canvas_token(seed="s"), [200, 200], [T0, T0 + timedelta(seconds=1)])
    backend.close()
    # A response block whose status line is missing, with a broken byte.
    append(log, b"2025-12-06 09:00:02 - INFO - [IN] INCOMING RESPONSE - PURCHASE Event\n"
                b"2025-12-06 09:00:02 - INFO - Body: {\"status\": \"VALID\xff\"}\n"
                b"2025-12-06 09:00:02 - INFO - " + b"=" * 100 + b"\n")
    config = Config(sources=[SourceConfig(path=str(log), start_at="beginning", timezone="UTC")],
                    state_dir=tmp_path / "state")

    with caplog.at_level(logging.WARNING, logger="snapwatch.run.daemon"):
        run_daemon_for(config, 1.5)
    said = [r.getMessage() for r in caplog.records if "not taken at face value" in r.getMessage()]
    assert any("responses without status" in m for m in said), said
    assert any("invalid utf8" in m for m in said), said
    assert all(str(log) in m for m in said)


def test_an_over_long_line_is_cut_and_said(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = tmp_path / "capi.log"
    backend = Backend(log, name="snapwatch.tests.longline")
    backend.calls(make_canvas_token(seed="l"), [200], [T0])
    backend.close()
    append(log, b"2025-12-06 09:00:01 - INFO - " + b"x" * 5000 + b"\n")
    config = Config(sources=[SourceConfig(path=str(log), start_at="beginning", timezone="UTC", max_line_bytes=1024)],
                    state_dir=tmp_path / "state")

    with caplog.at_level(logging.WARNING, logger="snapwatch.run.daemon"):
        run_daemon_for(config, 1.5)
    said = [r.getMessage() for r in caplog.records if "over max_line_bytes" in r.getMessage()]
    assert said == [f"{log}: 1 more line(s) over max_line_bytes (1024) cut (1 in all since start)"]
