"""User mistakes and ordinary shell use get one line on stderr (or none), never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from snapwatch.errors import EX_RUNTIME, EX_USAGE
from tests.helpers.cli import run_cli
from tests.helpers.paths import ROOT

STAMP = "2025-12-03 23:35:{:02d} - INFO - "


def test_usage_errors_carry_one_program_prefix() -> None:
    code, _, err = run_cli("scan")
    assert code == EX_USAGE
    assert err == "snapwatch: scan: the following arguments are required: FILE\n"
    code, _, err = run_cli("--no-such-flag")
    assert code == EX_USAGE
    assert err.startswith("snapwatch: ") and not err.startswith("snapwatch: snapwatch")
    assert err.count("\n") == 1


def test_diagnose_with_a_directory_as_source_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\nsources:\n  - path: {tmp_path}\n")
    code, _, err = run_cli("diagnose", "-c", str(config), "--now", "2025-12-04T00:00:00+00:00")
    assert code == EX_RUNTIME
    assert err == f"snapwatch: {tmp_path}: cannot read: Is a directory\n"


def _many_incidents(path: Path, cycles: int) -> None:
    """A log whose scan --json is far larger than a pipe's buffer: a short 401 streak, then recovery, again."""
    lines = []
    for cycle in range(cycles):
        for i, status in enumerate([401] * 5 + [200] * 3):
            p = STAMP.format((cycle * 8 + i) % 60)
            lines += [f"{p}[OUT] OUTGOING REQUEST - E{i} Event (v3)", f"{p}URL: https://tr.snapchat.com/v3/px/events",
                      f"{p}Payload:", "{}", f"{p}[IN] INCOMING RESPONSE - E{i} Event", f"{p}Status Code: {status}",
                      f'{p}Body: {{"status": "x"}}']
    path.write_text("\n".join(lines) + "\n")


def test_a_reader_that_stops_early_ends_the_scan_quietly(tmp_path: Path) -> None:
    log = tmp_path / "capi.log"
    _many_incidents(log, 150)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SNAPWATCH_CONFIG", None)
    with subprocess.Popen([sys.executable, "-m", "snapwatch", "scan", "--json", str(log)], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.read(10) == b'{\n  "files'
        proc.stdout.close()  # like `| head -c 10`
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == EX_RUNTIME
    assert err == ""


def test_an_empty_now_is_refused_not_taken_for_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SNAPWATCH_CONFIG", raising=False)
    for value in ("", "garbage", "2025-13-01"):
        code, out, err = run_cli("diagnose", "--now", value)
        assert code == EX_USAGE
        assert out == "" and err == f"snapwatch: --now {value!r} is not an ISO 8601 time\n"


def test_scan_with_an_unreadable_env_file_says_so_in_one_line(tmp_path: Path) -> None:
    log = tmp_path / "capi.log"
    log.write_bytes(b"")
    code, out, err = run_cli("scan", "--env-file", str(tmp_path / "missing.env"), str(log))
    assert code == 1 and out == ""
    assert err.startswith("snapwatch: ") and "missing.env" in err and err.count("\n") == 1
