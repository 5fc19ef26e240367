"""Reload on SIGHUP and start-up with a bad config, against a real `snapwatch run` subprocess.

A broken config leaves the daemon on the old one with one line saying why; a changed one adds and removes
sources without losing counters or open incidents; `run` refuses an invalid config with exit 78 (the unit's
RestartPreventExitStatus) and one line on stderr.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from snapwatch.synthetic import demo_token
from tests.helpers.cli import snapwatch_process
from tests.helpers.daemon import write_config
from tests.helpers.paths import ROOT
from tests.helpers.systemd import (
    START_TIMEOUT,
    SYSTEMD_VARS,
    BackendLog,
    Daemon,
    source_status,
    status_json,
    wait_until,
)

PLAIN_LINE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} [A-Z]+ \S+: ")


def reload_and_wait(daemon: Daemon) -> None:
    """Send SIGHUP; return once READY=1 follows RELOADING=1 (sent whether the reload worked or not)."""
    mark = len(daemon.notify.texts())
    daemon.signal(signal.SIGHUP)
    reloading = daemon.wait_for(lambda m: m.startswith("RELOADING=1"), mark)
    daemon.wait_for("READY=1", reloading + 1)
    assert daemon.alive()


def stop(daemon: Daemon) -> None:
    daemon.signal(signal.SIGTERM)
    assert daemon.proc.wait(10) == 0, daemon.stderr()[-3000:]


def counts(tmp_path: Path, state: Path, log: BackendLog) -> dict[str, int]:
    responses: dict[str, int] = source_status(status_json(state, tmp_path), log.path)["responses"]
    return responses


# Each broken config as a function of the good text, with the line and column its error names.
def _unknown_key(good: str) -> tuple[str, str]:
    return good + "colour: blue\n", rf":{good.count(chr(10)) + 1}:1: colour: "


def _yaml_garbage(good: str) -> tuple[str, str]:
    return good + "rules: {auth_failures: [\n  ::: %\n", r":\d+:\d+: \(yaml\): "


@pytest.mark.parametrize("breakage", [_unknown_key, _yaml_garbage], ids=["unknown-key", "yaml-garbage"])
def test_broken_config_keeps_the_old_one(tmp_path: Path, breakage: Callable[[str], tuple[str, str]]) -> None:
    token = demo_token(seed="reload-broken")
    log = BackendLog(tmp_path / "capi.log")
    log.write(200, 10, token)
    state = tmp_path / "state"
    config = write_config(tmp_path / "config.yaml", [log.path], state)
    daemon = Daemon(tmp_path, config)
    try:
        daemon.wait_for("READY=1", timeout=START_TIMEOUT)
        assert counts(tmp_path, state, log) == {"200": 10}
        broken, where = breakage(config.read_text(encoding="utf-8"))
        config.write_text(broken, encoding="utf-8")

        reload_and_wait(daemon)

        # One line, saying why, with FILE:LINE:COL; and the normal (non-journal) log format.
        refused = [line for line in daemon.stderr().splitlines() if "reload refused" in line]
        assert len(refused) == 1, daemon.stderr()
        assert re.search(re.escape(str(config)) + where, refused[0]), refused[0]
        assert PLAIN_LINE.match(refused[0]) and " ERROR " in refused[0], refused[0]
        assert "configuration reloaded" not in daemon.stderr()
        # Still following the source of the old config, and still counting.
        log.write(200, 4, token)
        log.write(500, 1, token)
        wait_until(lambda: counts(tmp_path, state, log) == {"200": 14, "500": 1}, daemon,
                   what="the new lines counted")
        stop(daemon)
        assert "Traceback" not in daemon.stderr()
    finally:
        daemon.close()
        log.close()


def test_changed_config_adds_and_removes_sources_keeping_counters_and_incidents(tmp_path: Path) -> None:
    token = demo_token(seed="reload-changed")
    first, second = BackendLog(tmp_path / "first.log"), BackendLog(tmp_path / "second.log")
    first.write(200, 10, token)
    second.write(200, 7, token)  # exists before it is configured: followed from its beginning once added
    state = tmp_path / "state"
    config = write_config(tmp_path / "config.yaml", [first.path], state)
    daemon = Daemon(tmp_path, config)
    try:
        ready = daemon.wait_for("READY=1", timeout=START_TIMEOUT)
        first.write(401, 5, token)
        opened = daemon.wait_for(lambda m: "following 1 file(s); 1 open incident(s)" in m, ready)
        incidents = status_json(state, tmp_path)["incidents"]
        assert [(i["rule"], i["source"]) for i in incidents] == [("auth-failures", str(first.path))]

        # Add the second source and change a rule: the open incident survives, the new source is read.
        write_config(config, [first.path, second.path], state, "rules:\n  auth_failures:\n    streak: 3\n")
        reload_and_wait(daemon)
        daemon.wait_for(lambda m: "following 2 file(s); 1 open incident(s)" in m, opened + 1)
        wait_until(lambda: any(s["path"] == str(second.path) and s["responses"] == {"200": 7}
                               for s in status_json(state, tmp_path)["sources"]), daemon,
                   what="the added source's backlog counted")
        data = status_json(state, tmp_path)
        assert [i["id"] for i in data["incidents"]] == [incidents[0]["id"]]
        assert source_status(data, first.path)["responses"] == {"200": 10, "401": 5}
        # The detector kept its state through the reload: three 2xx resolve the incident it holds.
        first.write(200, 3, token)
        daemon.wait_for(lambda m: "following 2 file(s); 0 open incident(s)" in m, opened + 1)
        assert status_json(state, tmp_path)["incidents"] == []

        # Remove the first source: it is released (no longer counted), its counters stay as they were.
        write_config(config, [second.path], state)
        mark = len(daemon.notify.texts())
        reload_and_wait(daemon)
        daemon.wait_for(lambda m: m.startswith("STATUS=following 1 file(s)"), mark)
        before = source_status(status_json(state, tmp_path), first.path)
        assert before["responses"] == {"200": 13, "401": 5}
        first.write(200, 4, token)
        second.write(200, 2, token)
        wait_until(lambda: counts(tmp_path, state, second) == {"200": 9}, daemon,
                   what="the kept source's new lines counted")
        after = source_status(status_json(state, tmp_path), first.path)
        assert after == before
        err = daemon.stderr()
        assert f"stopped following {first.path}" in err
        assert f"following {second.path}" in err
        stop(daemon)
    finally:
        daemon.close()
        first.close()
        second.close()


def _bad_key(path: Path) -> str:
    path.write_text("sources:\n  - path: /var/log/app.log\n    start_at: middle\n", encoding="utf-8")
    return rf"{re.escape(str(path))}:3:15: sources\[0\]\.start_at: "


def _bad_yaml(path: Path) -> str:
    path.write_text("sources:\n  - path: [unclosed\n", encoding="utf-8")
    return rf"{re.escape(str(path))}:\d+:\d+: \(yaml\): "


def _missing(path: Path) -> str:
    return rf"{re.escape(str(path))}: cannot read: "


@pytest.mark.parametrize("make", [_bad_key, _bad_yaml, _missing], ids=["bad-value", "bad-yaml", "missing"])
def test_run_with_an_invalid_config_exits_78_with_one_line(tmp_path: Path, make: Callable[[Path], str]) -> None:
    config = tmp_path / "config.yaml"
    expected = make(config)
    env = {k: v for k, v in os.environ.items() if k not in SYSTEMD_VARS}
    env["PYTHONPATH"] = str(ROOT)
    done = snapwatch_process("run", "-c", str(config), env=env)
    assert done.returncode == 78, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert re.fullmatch(r"snapwatch: " + expected + r".+", lines[0]), lines[0]
    assert done.stdout == ""

