"""A YAML alias bomb (nine levels, a few hundred bytes) is a positioned config error, at start and at reload."""

from __future__ import annotations

import re
import resource
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.helpers.clock import seconds
from tests.helpers.daemon import write_config
from tests.helpers.paths import ROOT
from tests.helpers.peers import Backend
from tests.helpers.process import READY, DaemonProcess, status_json
from tests.helpers.tokens import make_canvas_token
from tests.helpers.wait import wait_until

TOKEN = make_canvas_token(seed="bomb")
T0 = datetime(2025, 12, 6, 9, 0, 0, tzinfo=UTC)
MEMORY = 2 << 30  # the daemon may not take more than this: a bomb that expands is stopped, not the machine
# Nine levels of nine: 9**9 (387 million) values from 414 bytes.
BOMB = "".join(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n"
               for prev, name in zip("abcdefgh", "bcdefghi", strict=True))
BOMB = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + BOMB
POSITIONED = re.compile(r"^snapwatch: (?P<file>.+):(?P<line>\d+):(?P<col>\d+): (?P<key>\S+): .*alias", re.M)


def test_check_config_refuses_an_alias_bomb_at_once_with_its_place(tmp_path: Path) -> None:
    config = tmp_path / "bomb.yaml"
    config.write_text(BOMB, encoding="utf-8")
    assert len(BOMB) < 500
    started = time.monotonic()
    with subprocess.Popen([sys.executable, "-m", "snapwatch", "check-config", "-c", str(config)], cwd=ROOT,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        resource.prlimit(proc.pid, resource.RLIMIT_AS, (MEMORY, MEMORY))
        try:
            _, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
    elapsed = time.monotonic() - started
    assert proc.returncode == 78, err[-2000:]
    assert "Traceback" not in err
    found = POSITIONED.search(err)
    assert found is not None and found["file"] == str(config), err
    assert elapsed < 20  # a bound far above the interpreter's start, far below a bomb's minutes


def test_a_reload_with_an_alias_bomb_is_refused_and_the_daemon_keeps_following(tmp_path: Path) -> None:
    log = tmp_path / "capi.log"
    backend = Backend(log, name="snapwatch.tests.faults.bomb")
    backend.calls(TOKEN, [200] * 3, seconds(T0, 3))
    config = write_config(tmp_path / "config.yaml", [log], tmp_path / "state", timezone="UTC")
    good = config.read_text()
    reader = tmp_path / "reader.yaml"  # what `status` reads meanwhile: the same settings, without the bomb
    reader.write_text(good, encoding="utf-8")
    daemon = DaemonProcess(config, memory_limit=MEMORY)
    try:
        daemon.wait_for(READY, 30)
        config.write_text(good + BOMB, encoding="utf-8")
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_for("reload refused", 30)
        assert any("alias" in line for line in daemon.lines if "reload refused" in line), daemon.output()
        backend.calls(TOKEN, [200] * 2, seconds(T0, 2, first=10))
        wait_until(lambda: _responses(reader) == {"200": 5}, "the daemon to go on counting after the refusal")
        code, took = daemon.terminate(timeout=30)
    finally:
        backend.close()
        if daemon.proc.poll() is None:
            daemon.kill()
    assert code == 0, daemon.output()
    assert took < 15


def _responses(config: Path) -> dict[str, int]:
    sources = status_json(config)["sources"]
    assert isinstance(sources, list)
    return {k: v for s in sources for k, v in s["responses"].items()}
