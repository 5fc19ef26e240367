"""A rotated file deleted while the daemon was down: one log-gap, in status and in `snapwatch diagnose`."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from snapwatch.config import Config, SourceConfig
from snapwatch.store.state import Store
from tests.helpers.cli import run_cli
from tests.helpers.clock import seconds
from tests.helpers.daemon import run_daemon_for
from tests.helpers.peers import Backend
from tests.helpers.tokens import make_canvas_token

TOKEN = make_canvas_token(seed="gap")
T0 = datetime(2025, 12, 6, 9, 0, 0, tzinfo=UTC)


def test_a_backup_deleted_while_down_is_reported_once_as_a_gap(tmp_path: Path) -> None:
    log = tmp_path / "capi.log"
    config = Config(sources=[SourceConfig(path=str(log), start_at="beginning", timezone="UTC")],
                    state_dir=tmp_path / "state")
    backend = Backend(log, name="snapwatch.tests.gap")
    backend.calls(TOKEN, [200] * 4, seconds(T0, 4))
    run_daemon_for(config, 1.0)

    # While snapwatch is down: more lines, a rotation, and the rotated file deleted before anyone read it.
    backend.calls(TOKEN, [401] * 3, seconds(T0, 3, first=10))
    backend.close()
    lost = log.stat().st_size
    os.rename(log, tmp_path / "capi.log.1")
    os.unlink(tmp_path / "capi.log.1")
    backend = Backend(log, name="snapwatch.tests.gap")
    backend.calls(TOKEN, [200] * 2, seconds(T0, 2, first=20))
    backend.close()
    run_daemon_for(config, 1.0)
    run_daemon_for(config, 1.0)  # a second start must not report the same gap again

    with Store.open(config.state_dir) as store:
        gaps = store.gaps()
        counters = store.counters(str(log))
    assert len(gaps) == 1
    assert gaps[0].lost_bytes is None or gaps[0].lost_bytes <= lost
    assert counters == {"200": 6}  # the four before, the two after; the three 401s are the gap

    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"sources:\n  - path: {log}\n    timezone: UTC\nstate_dir: {config.state_dir}\n")
    code, out, err = run_cli("status", "--json", "-c", str(cfg))
    assert code == 0, err
    assert [g["path"] for g in json.loads(out)["log_gaps"]] == [str(log)]
    code, out, err = run_cli("diagnose", "--json", "-c", str(cfg))
    assert code == 0, err
    findings = json.loads(out)["findings"]
    gap = next(f for f in findings if f["code"] == "log-gap")
    assert str(log) in gap["evidence"][0]
