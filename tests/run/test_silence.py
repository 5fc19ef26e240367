"""`snapwatch silence`: a muted rule sends nothing while its incident opens and resolves, the mute survives a
restart and needs no reload, and once it ends alerts flow as usual."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers import cli
from tests.helpers.daemon import write_config
from tests.helpers.peers import Backend, Hook
from tests.helpers.process import READY, DaemonProcess, status_json
from tests.helpers.tokens import make_canvas_token


def _streak_and_recovery(backend: Backend, token: str, start: datetime) -> None:
    second = timedelta(seconds=1)
    backend.calls(token, [401] * 6 + [200] * 4, [start + i * second for i in range(10)])


@pytest.mark.timeout(120)
def test_a_silenced_rule_sends_nothing_until_the_silence_ends(tmp_path: Path, hook: Hook) -> None:
    log, token = tmp_path / "capi.log", make_canvas_token(seed="silence")
    backend = Backend(log, name="snapwatch.tests.silence")
    config = write_config(tmp_path / "config.yaml", [log], tmp_path / "state",
                          "rules:\n  auth_failures:\n    streak: 5\n    recovery: 3\n"
                          f"alerts:\n  group_wait: 0s\n  urls:\n    - json://127.0.0.1:{hook.port}/hook\n",
                          timezone="UTC")
    first = DaemonProcess(config)
    first.wait_for(READY, 30)
    added = cli.snapwatch_process("silence", "add", "--rule", "auth-failures", "--for", "1h",
                                  "--comment", "token rotation", "-c", str(config))
    assert added.returncode == 0, added.stderr
    silence_id = added.stdout.split()[1].rstrip(":")
    assert first.terminate()[0] == 0
    [shown] = status_json(config)["silences"]
    assert (shown["id"], shown["rule"], shown["comment"]) == (silence_id, "auth-failures", "token rotation")

    daemon = DaemonProcess(config)  # a restart: the silence is in the state file, not in the process
    try:
        daemon.wait_for(READY, 30)
        _streak_and_recovery(backend, token, datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10))
        daemon.wait_for("incident resolved: auth-failures", 30)
        daemon.wait_for("silenced", 30)
        assert hook.received == []  # opened and resolved inside the silence: nothing sent
        ended = cli.snapwatch_process("silence", "expire", silence_id, "-c", str(config))
        assert ended.returncode == 0 and ended.stdout == f"silence {silence_id} ended\n", ended.stderr
        _streak_and_recovery(backend, token, datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5))
        received = hook.wait_for(2, 30)  # no reload: the daemon reads the silences before each hand-out
        text = cli.snapwatch_process("status", "-c", str(config)).stdout
        assert f"daemon: running (pid {daemon.proc.pid}, since " in text, text
        assert f"target json://127.0.0.1:{hook.port}/…: last alert " in text, text
    finally:
        backend.close()
        code, _ = daemon.terminate()
    assert code == 0, daemon.output()
    titles = [body["title"] for _, body in received]
    assert titles[0].startswith("[snapwatch] FIRING auth-failures") and "RESOLVED" in titles[1], titles
    assert status_json(config)["silences"] == []
    after = status_json(config)
    assert after["daemon"] == {"running": False, "pid": None, "since": None}
    assert [t["target"] for t in after["targets"]] == [f"json://127.0.0.1:{hook.port}/…"]
    listed = json.loads(cli.snapwatch_process("silence", "list", "--json", "-c", str(config)).stdout)
    assert [(s["id"], s["active"]) for s in listed] == [(silence_id, False)]


def test_silence_mistakes_get_clear_answers(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yaml", [tmp_path / "capi.log"], tmp_path / "state", timezone="UTC")
    none = cli.snapwatch_process("silence", "list", "-c", str(config))
    assert none.returncode == 1 and "no state in" in none.stderr
    from snapwatch.store.state import Store

    Store.open(tmp_path / "state").close()
    bad_rule = cli.snapwatch_process("silence", "add", "--rule", "auth-failure", "--for", "1h", "-c", str(config))
    assert bad_rule.returncode == 2 and "--rule 'auth-failure' is not a rule: auth-failures" in bad_rule.stderr
    bad_for = cli.snapwatch_process("silence", "add", "--for", "soon", "-c", str(config))
    assert bad_for.returncode == 2 and "silence add: --for: 'soon' is not a duration" in bad_for.stderr
    unknown = cli.snapwatch_process("silence", "expire", "nope", "-c", str(config))
    assert unknown.returncode == 1 and "no active silence nope" in unknown.stderr
    assert cli.snapwatch_process("silence", "list", "-c", str(config)).stdout == "no silences\n"
