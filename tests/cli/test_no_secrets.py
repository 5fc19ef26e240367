"""No command's output, log line or state file holds a token or a webhook secret (nor more than 6 + 4 of it).

Every diagnosis scenario and golden scan log goes through scan (text and JSON), token (--env-file and
--stdin, text and JSON) and diagnose (text and JSON); check-config gets webhook URLs with secrets in
them; a real daemon run feeds status; the demo runs once. Each output, stdout and stderr, is checked
against every token in the log's requests, every raw value in the .env, and every URL secret.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from urllib.parse import unquote

import pytest
from dotenv import dotenv_values

from snapwatch.synthetic import demo_token
from tests.helpers import cli
from tests.helpers.daemon import write_config
from tests.helpers.paths import DATA
from tests.helpers.process import READY, DaemonProcess
from tests.helpers.tokens import assert_no_secret

SCENARIOS = DATA / "scenarios"
GOLDEN = DATA / "scan"
NAMES = sorted(p.name for p in SCENARIOS.iterdir() if (p / "scenario.json").is_file())
GOLDEN_LOGS = sorted(p.name for p in GOLDEN.iterdir() if ".log" in p.name)
_IN_URL = re.compile(rb"access_token=([^\s&\"]+)")


def _core(raw: str) -> str:
    """The token inside a raw value: what a leak check must look for, besides the raw value itself."""
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return value.strip().removeprefix("Bearer ").removeprefix("bearer ").strip()


def _tokens_in(log: Path) -> set[str]:
    """Every token the log's request URLs carry (as sent, and percent-decoded)."""
    data = log.read_bytes()
    if log.name.endswith(".gz"):
        data = gzip.decompress(data)
    found: set[str] = set()
    for match in _IN_URL.finditer(data):
        sent = match.group(1).decode("utf-8", "replace")
        found |= {sent, unquote(sent), _core(unquote(sent))}
    return {t for t in found if len(t) > 10}


def _secrets(name: str) -> list[str]:
    folder = SCENARIOS / name
    spec = json.loads((folder / "scenario.json").read_text())
    secrets = set(spec["tokens"].values()) | _tokens_in(folder / "backend.log")
    raw = dotenv_values(folder / ".env").get("SNAP_ACCESS_TOKEN")
    if raw:
        secrets |= {raw, _core(raw)}
    assert all(len(s) > 10 for s in secrets)
    return sorted(secrets)


def run_cli(*argv: str, stdin: str | None = None) -> str:
    """One command in this process; its stdout and stderr together."""
    code, out, err = cli.run_cli(*argv, stdin=stdin)
    assert code in (0, 1), err
    return out + err


def _config(tmp_path: Path, log: Path, env_file: Path, extra: str = "") -> Path:
    return write_config(tmp_path / "config.yaml", [log], tmp_path / "state",
                        f"token:\n  env_file: {env_file}\n  service: shop-backend.service\n{extra}", timezone="UTC")


def test_the_secret_lists_are_not_empty() -> None:
    # the checks below are only as good as the secrets they look for
    assert len(_secrets("drift-restart-pending")) >= 2
    assert len(_tokens_in(GOLDEN / "interleaved.log")) >= 3
    with pytest.raises(AssertionError):
        assert_no_secret(f"leaked: {_secrets('quoted-token')[0][5:30]}", *_secrets("quoted-token"))


@pytest.mark.parametrize("name", NAMES)
def test_scenario_outputs_hold_no_token(name: str, tmp_path: Path) -> None:
    folder = SCENARIOS / name
    log, env_file = folder / "backend.log", folder / ".env"
    secrets = _secrets(name)
    config = _config(tmp_path, log, env_file, "rules:\n  silence:\n    enabled: true\n")
    outputs = [
        run_cli("scan", "-c", str(config), "--env-file", str(env_file), str(log)),
        run_cli("scan", "--json", "-c", str(config), "--env-file", str(env_file), str(log)),
        run_cli("scan", "--json", "-c", str(config), str(log)),
        run_cli("token", "--env-file", str(env_file)),
        run_cli("token", "--json", "--env-file", str(env_file)),
        run_cli("diagnose", "-c", str(config), "--now", "2025-12-04T00:15:00+00:00"),
        run_cli("diagnose", "--json", "-c", str(config), "--now", "2025-12-04T00:15:00+00:00"),
    ]
    raw = dotenv_values(env_file).get("SNAP_ACCESS_TOKEN")
    if raw:
        outputs += [run_cli("token", "--stdin", stdin=raw + "\n"), run_cli("token", "--json", "--stdin", stdin=raw)]
    assert all(outputs)
    for text in outputs:
        assert_no_secret(text, *secrets)


@pytest.mark.parametrize("name", [n for n in GOLDEN_LOGS if n.endswith(".log")])
def test_golden_scan_outputs_hold_no_token(name: str) -> None:
    logs = sorted(GOLDEN.glob(f"{name}*"))
    secrets = sorted(set().union(*(_tokens_in(p) for p in logs)))
    args = ["-c", str(GOLDEN / "utc.config.yaml"), *map(str, logs)]
    for text in (run_cli("scan", *args), run_cli("scan", "--json", *args)):
        assert text
        assert_no_secret(text, *secrets)


def test_check_config_masks_webhook_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    slack = "https://hooks.slack.com/services/T0WEBHOOK1/B0WEBHOOK2/xoxWebhookSecretValue42"
    monkeypatch.setenv("SNAPWATCH_TEST_HOOK", slack)
    secrets = ["T0WEBHOOK1/B0WEBHOOK2", "xoxWebhookSecretValue42", "tgBotSecretToken77", "AmPassw0rdSecret",
               "mailUserPassw0rd"]  # the scheme and host may show: they say where, not how to get in
    config = tmp_path / "config.yaml"
    config.write_text(
        f"sources:\n  - path: {tmp_path / 'backend.log'}\n"
        "alerts:\n  urls:\n    - ${SNAPWATCH_TEST_HOOK}\n"
        "    - tgram://123456789:tgBotSecretToken77/987654321\n"
        "    - mailtos://oncall:mailUserPassw0rd@mail.example.com?to=oncall@example.com\n"
        "  alertmanager:\n    - http://snapwatch:AmPassw0rdSecret@127.0.0.1:9093\n"
        f"state_dir: {tmp_path / 'state'}\n")
    text = run_cli("check-config", "-c", str(config))
    assert "hooks.slack.com" in text and "127.0.0.1:9093" in text  # the places stay readable
    assert_no_secret(text, *secrets)


def test_daemon_log_state_and_status_hold_no_token(tmp_path: Path) -> None:
    name = "drift-restart-pending"  # the .env holds one token, the log another: both must stay hidden
    folder = SCENARIOS / name
    log = tmp_path / "backend.log"
    log.write_bytes((folder / "backend.log").read_bytes())
    secrets = _secrets(name)
    config = _config(tmp_path, log, folder / ".env", "alerts:\n  group_wait: 1s\n")
    daemon = DaemonProcess(config)
    try:
        daemon.wait_for(READY, 30)
        daemon.wait_for("incident opened", 30)
        code, _ = daemon.terminate()
    finally:
        if daemon.proc.poll() is None:
            daemon.kill()
    assert code == 0, daemon.output()
    outputs = ["".join(daemon.lines), run_cli("status", "-c", str(config)),
               run_cli("status", "--json", "-c", str(config))]
    assert "auth-failures" in outputs[2]
    state_files = [p for p in (tmp_path / "state").rglob("*") if p.is_file()]
    assert state_files
    for text in outputs + [p.read_bytes().decode("utf-8", "replace") for p in state_files]:
        assert_no_secret(text, *secrets)


def test_demo_output_holds_no_token() -> None:
    done = cli.snapwatch_process("demo", "--fast", timeout=120)
    assert done.returncode == 0, done.stderr
    assert "token-drift" in done.stdout
    assert_no_secret(done.stdout + done.stderr, demo_token(seed="old"), demo_token(nbf=1764900000, seed="new"))
