"""`snapwatch test-alert` against live and dead webhook peers, and the live `snapwatch demo`, as subprocesses."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from tests.helpers.cli import snapwatch_process
from tests.helpers.peers import HOOK_SECRET, Hook, free_port
from tests.helpers.tokens import assert_no_secret


def write_config(tmp: Path, urls: list[str]) -> Path:
    path = tmp / "config.yaml"
    doc = {"alerts": {"urls": urls, "timeout": "2s"}, "state_dir": str(tmp / "state")}
    path.write_text(json.dumps(doc, indent=2))  # JSON is YAML
    return path


def test_test_alert_reaches_every_live_target(tmp_path: Path, hook: Hook) -> None:
    urls = [f"json://127.0.0.1:{hook.port}/hook", f"mmost://127.0.0.1:{hook.port}/{HOOK_SECRET}"]
    done = snapwatch_process("test-alert", "-c", str(write_config(tmp_path, urls)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"json://127.0.0.1:{hook.port}/…: delivered",
                                        f"mmost://127.0.0.1:{hook.port}/…: delivered"]
    got = dict(hook.wait_for(2))
    assert got["/hook"]["title"].startswith("[snapwatch] TEST Test alert from snapwatch on ")
    assert "this notification target works" in got[f"/hooks/{HOOK_SECRET}"]["text"]
    assert_no_secret(done.stdout + done.stderr, HOOK_SECRET)


def test_test_alert_names_the_dead_target_and_still_delivers_to_the_other(tmp_path: Path, hook: Hook) -> None:
    dead = free_port()  # nothing listens there: the connection is refused
    urls = [f"mmost://127.0.0.1:{dead}/{HOOK_SECRET}", f"json://127.0.0.1:{hook.port}/hook"]
    done = snapwatch_process("test-alert", "-c", str(write_config(tmp_path, urls)))
    assert done.returncode == 1
    failed, delivered = done.stdout.splitlines()
    assert failed.startswith(f"mmost://127.0.0.1:{dead}/…: FAILED: mmost://127.0.0.1:{dead}/…: ")
    assert re.search(r"connection|refused", failed, re.IGNORECASE), failed
    assert delivered == f"json://127.0.0.1:{hook.port}/…: delivered"
    assert hook.wait_for(1)[0][0] == "/hook"
    assert_no_secret(done.stdout + done.stderr, HOOK_SECRET)


def test_demo_shows_the_alert_with_its_diagnosis_and_the_resolution_quickly() -> None:
    started = time.monotonic()
    done = snapwatch_process("demo", "--fast", timeout=40)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert elapsed < 20, elapsed
    out = done.stdout
    firing = out.index("[snapwatch] FIRING auth-failures on demo-host")
    resolved = out.index("[snapwatch] RESOLVED auth-failures on demo-host after")
    assert firing < resolved
    alert = out[firing:resolved]
    assert "Verdict:\n  token-drift: The backend still sends an old token" in alert
    assert re.search(r"\n  1\. Restart the backend so it loads the token .*\n  2\. ", alert), alert
    assert re.search(r"fingerprint [0-9a-f]{12} \(canvas-s2s\)", alert)
    assert "2 alert(s) delivered" in out
