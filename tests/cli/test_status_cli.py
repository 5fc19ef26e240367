"""`snapwatch status [--json]` after a real daemon run: the contract's shape, and no token in the state files."""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from snapwatch.store.state import Store
from snapwatch.synthetic import Call, backend_logger, log_call
from tests.helpers.cli import snapwatch_process
from tests.helpers.daemon import write_config
from tests.helpers.process import READY, DaemonProcess, status_json
from tests.helpers.tokens import assert_no_secret, make_canvas_token

FINDING_CODES = {
    "token-missing", "token-malformed", "token-quoted", "token-whitespace", "token-bearer-prefix",
    "token-not-canvas", "token-expired", "token-not-yet-valid", "token-recently-issued", "token-staging",
    "token-drift", "token-changed", "token-previously-accepted", "token-revoked", "token-unlogged",
    "token-rejected-for-pixel", "auth-placement",
    "endpoint-changed", "pixel-changed", "v2-deprecated", "probe-accepted", "probe-rejected", "probe-failed",
    "rate-limited", "server-errors", "invalid-events", "log-silent", "log-gap", "token-in-log", "unknown",
}


def _aware(text: object) -> datetime:
    assert isinstance(text, str)
    parsed = datetime.fromisoformat(text)
    assert parsed.utcoffset() is not None, f"{text} has no offset"
    return parsed


def _config(tmp_path: Path, log_path: Path, env_file: Path) -> Path:
    return write_config(tmp_path / "config.yaml", [log_path], tmp_path / "state",
                        f"token:\n  env_file: {env_file}\n  service: shop-backend.service\nalerts:\n  group_wait: 1s\n",
                        timezone="UTC")


def _status_text(config: Path) -> str:
    done = snapwatch_process("status", "-c", str(config))
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_status_after_a_daemon_run_has_the_contract_shape_and_no_token(tmp_path: Path) -> None:
    token = make_canvas_token(seed="s")
    old_token = make_canvas_token(seed="o")
    log_path, env_file = tmp_path / "snap_conversions_api.log", tmp_path / ".env"
    env_file.write_text(f"SNAP_ACCESS_TOKEN={token}\n", encoding="utf-8")
    log_path.touch()
    config = _config(tmp_path, log_path, env_file)
    handler = logging.FileHandler(log_path, encoding="utf-8")
    logger = backend_logger(handler, "snapwatch.test.status")
    written: Counter[str] = Counter()
    daemon = DaemonProcess(config)
    try:
        daemon.wait_for(READY, 30)
        for i, (status, sent) in enumerate([(200, token)] * 6 + [(401, old_token)] * 7):
            log_call(logger, Call(("PAGE_VIEW", "PURCHASE")[i % 2], status, sent), datetime.now(UTC))
            written[str(status)] += 1
        handler.close()
        daemon.wait_for("incident opened", 30)
        deadline = time.monotonic() + 20
        while True:  # the alert leaves through the outbox after group_wait
            running = status_json(config)
            outbox = running["outbox"]
            assert isinstance(outbox, dict)
            if outbox["delivered"] >= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        code, _ = daemon.terminate()
    finally:
        handler.close()
        if daemon.proc.poll() is None:
            daemon.kill()
    assert code == 0, daemon.output()

    data = status_json(config)
    assert set(data) >= {"sources", "incidents", "outbox"}
    sources = data["sources"]
    assert isinstance(sources, list) and len(sources) == 1
    source = sources[0]
    assert set(source) >= {"path", "inode", "offset", "responses", "requests", "last_record_at"}
    st = os.stat(log_path)
    assert source["path"] == str(log_path)
    assert (source["inode"], source["offset"]) == (st.st_ino, st.st_size)
    assert source["responses"] == {"200": 6, "401": 7} == dict(written)
    assert source["requests"] == 13
    assert abs((_aware(source["last_record_at"]) - datetime.now(UTC)).total_seconds()) < 120

    incidents = data["incidents"]
    assert isinstance(incidents, list) and len(incidents) == 1  # the streak is still open
    incident = incidents[0]
    assert set(incident) >= {"id", "rule", "state", "opened_at", "verdict"}
    assert isinstance(incident["id"], str) and incident["id"]
    assert (incident["rule"], incident["state"]) == ("auth-failures", "open")
    assert _aware(incident["opened_at"]) <= _aware(source["last_record_at"])
    assert incident["verdict"] in FINDING_CODES

    assert data["outbox"] == {"pending": 0, "delivered": 1, "failed": 0}
    assert running["outbox"] == data["outbox"]  # read while the daemon ran: the same store, no lock trouble

    text = _status_text(config)
    assert f"{log_path}: offset {st.st_size} (inode {st.st_ino}), 13 requests" in text
    assert "200: 6, 401: 7" in text
    assert "open incidents: 1" in text and "auth-failures" in text
    assert "outbox: 0 pending, 1 delivered, 0 failed" in text

    state_files = [p for p in (tmp_path / "state").rglob("*") if p.is_file()]
    assert any(p.name == "state.db" for p in state_files)
    for path in state_files:
        assert_no_secret(path.read_bytes(), token, old_token)
    assert_no_secret("".join(daemon.lines) + text + str(data), token, old_token)
    assert old_token in log_path.read_text(encoding="utf-8")  # the check above looked for bytes that were there


def test_status_of_a_fresh_state_is_empty_and_well_formed(tmp_path: Path) -> None:
    config = _config(tmp_path, tmp_path / "absent.log", tmp_path / ".env")
    done = snapwatch_process("status", "-c", str(config))  # no daemon has run: nothing is made up, nor created
    assert (done.returncode, done.stderr) == (
        1, f"snapwatch: no state in {tmp_path / 'state'}: has `snapwatch run` run with this config?\n")
    assert not (tmp_path / "state").exists()
    Store.open(tmp_path / "state").close()  # as a daemon that has seen nothing leaves it
    assert status_json(config) == {"sources": [], "incidents": [], "outbox": {"pending": 0, "delivered": 0,
                                                                              "failed": 0}, "log_gaps": []}
    text = _status_text(config)
    assert "open incidents: none" in text and "outbox: 0 pending, 0 delivered, 0 failed" in text
