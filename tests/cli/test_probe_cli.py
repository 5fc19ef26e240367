"""`snapwatch diagnose --probe` end to end: the real command, a stand-in for Snap on loopback, a real log."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from snapwatch.cli import app as cli
from snapwatch.ingest.tokens import fingerprint
from snapwatch.synthetic import DEFAULT_PIXEL
from tests.helpers.cli import snapwatch_process
from tests.helpers.clock import seconds
from tests.helpers.peers import Backend, FakeSnap, snap_server
from tests.helpers.tokens import assert_no_secret, jwt_segment, make_canvas_token, snapwatch_records

TOKEN = make_canvas_token(seed="p")  # a well-formed Canvas S2S token that Snap never accepted here
FP = fingerprint(TOKEN)
T0 = datetime(2025, 12, 5, 10, 0, 0, tzinfo=UTC)
NOW = "2025-12-05T10:05:00+00:00"
EMAIL_HASH = hashlib.sha256(b"snapwatch-probe@example.com").hexdigest()


@dataclass
class Setup:
    config: Path
    snap: FakeSnap


def write_setup(tmp: Path, snap: FakeSnap, token: str, statuses: list[int], timeout: str = "5s") -> Path:
    """A .env with ``token`` and the pixel, a log of ``statuses`` answered to it, a config pointing at ``snap``."""
    env_file = tmp / ".env"
    env_file.write_text(f"SNAP_ACCESS_TOKEN={token}\nSNAP_PIXEL_ID={DEFAULT_PIXEL}\n", encoding="utf-8")
    log = tmp / "capi.log"
    backend = Backend(log, name="snapwatch.tests.probe_cli")
    try:
        backend.calls(token, statuses, seconds(T0, len(statuses)))
    finally:
        backend.close()
    config = tmp / "config.yaml"
    config.write_text(
        f"sources:\n  - path: {log}\n    timezone: UTC\n"
        f"token:\n  env_file: {env_file}\n"
        f"probe:\n  base_url: {snap.base_url}\n  timeout: {timeout}\n  min_interval: 5m\n"
        f"state_dir: {tmp / 'state'}\n",
        encoding="utf-8",
    )
    return config


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with snap_server() as snap:
        yield Setup(write_setup(tmp_path, snap, TOKEN, [401] * 8), snap)


def diagnose(config: Path, *args: str, secret: str = TOKEN) -> dict[str, Any]:
    """Run the real command in a child process; its stdout is JSON and neither stream holds the token."""
    env = {k: v for k, v in os.environ.items() if k != "SNAPWATCH_CONFIG"}
    done = snapwatch_process("diagnose", "-c", str(config), *args, env=env)
    assert done.returncode == 0, done.stderr
    assert_no_secret(done.stdout, secret)
    assert_no_secret(done.stderr, secret)
    return json.loads(done.stdout) if "--json" in args else {"text": done.stdout}


def codes(result: dict[str, Any]) -> list[str]:
    return [f["code"] for f in result["findings"]]


def finding(result: dict[str, Any], code: str) -> dict[str, Any]:
    return next(f for f in result["findings"] if f["code"] == code)


def assert_probe_request(snap: FakeSnap) -> None:
    [seen] = snap.seen  # one probe per run, no retry
    assert seen.method == "POST"
    assert seen.path == f"/v3/{DEFAULT_PIXEL}/events/validate"
    assert seen.query == {"access_token": [TOKEN]}
    assert seen.content_type == "application/json"
    data = seen.body["data"]
    assert isinstance(data, list) and len(data) == 1
    event = data[0]
    assert event["event_name"] == "PAGE_VIEW" and event["action_source"] == "WEB"
    assert event["event_source_url"].startswith("https://")
    assert event["user_data"] == {"em": [EMAIL_HASH], "client_ip_address": "203.0.113.7",
                                  "client_user_agent": "snapwatch-probe"}
    # A live request carries the wall clock's time, not the --now being judged (Snap refuses far-off times).
    assert abs(event["event_time"] - datetime.now(UTC).timestamp()) < 60


def test_without_probe_nothing_is_sent_and_the_mismatch_is_only_suspected(setup: Setup) -> None:
    result = diagnose(setup.config, "--json", "--now", NOW)
    assert setup.snap.seen == []
    assert result["now"] == NOW
    assert result["verdict"] == "token-rejected-for-pixel"
    top = result["findings"][0]
    assert top["confidence"] == "medium"  # without Snap's word, the log alone
    assert not {"probe-accepted", "probe-rejected", "probe-failed"} & set(codes(result))


def test_probe_rejected_confirms_the_mismatch(setup: Setup) -> None:
    setup.snap.status = 401
    # A Snap that echoes the request back must not get the token into the output.
    setup.snap.body = json.dumps({"status": "UNAUTHORIZED", "reason": f"bad token {TOKEN}?access_token={TOKEN}"})
    result = diagnose(setup.config, "--probe", "--json", "--now", NOW)
    assert_probe_request(setup.snap)
    assert result["verdict"] == "token-rejected-for-pixel"
    top = result["findings"][0]
    assert (top["code"], top["severity"], top["confidence"]) == ("token-rejected-for-pixel", "critical", "high")
    assert any("validate endpoint rejected it" in line and "HTTP 401" in line for line in top["evidence"])
    assert any("Business Manager" in step and "Conversions API Tokens" in step and "Organization Admin" in step
               for step in top["remediation"])
    probe = finding(result, "probe-rejected")
    assert any(FP in line and "HTTP 401" in line for line in probe["evidence"])
    assert "probe-accepted" not in codes(result) and "probe-failed" not in codes(result)


def test_probe_accepted_rules_the_mismatch_out(setup: Setup) -> None:
    result = diagnose(setup.config, "--probe", "--json", "--now", NOW)
    assert_probe_request(setup.snap)
    assert "token-rejected-for-pixel" not in codes(result)
    assert result["verdict"] != "token-rejected-for-pixel"
    accepted = finding(result, "probe-accepted")
    assert accepted["confidence"] == "high"
    assert any("HTTP 200" in line and FP in line for line in accepted["evidence"])
    assert any("Canvas-vs-CAPI mismatch" in line and FP in line for line in result["ruled_out"])


@pytest.mark.parametrize("failure", ["500", "timeout"])
def test_probe_failed_concludes_nothing_about_the_token(setup: Setup, failure: str) -> None:
    baseline = diagnose(setup.config, "--json", "--now", NOW)
    if failure == "500":
        setup.snap.status, setup.snap.body = 500, "upstream trouble"
    else:
        setup.config.write_text(setup.config.read_text().replace("timeout: 5s", "timeout: 0.5s"))
        setup.snap.hold = 10.0  # released by the server's finalizer
    result = diagnose(setup.config, "--probe", "--json", "--now", NOW)
    assert_probe_request(setup.snap)
    failed = finding(result, "probe-failed")
    assert failed["confidence"] == "low"
    expected = "HTTP 500" if failure == "500" else "no answer within 0.5 s"
    assert any(expected in line and "says nothing about the token" in line for line in failed["evidence"])
    # Everything else is exactly what the log alone says: the failed probe moved nothing.
    assert [f for f in result["findings"] if f["code"] != "probe-failed"] == baseline["findings"]
    assert result["ruled_out"] == baseline["ruled_out"]
    assert result["verdict"] == baseline["verdict"] == "token-rejected-for-pixel"
    assert not {"probe-accepted", "probe-rejected"} & set(codes(result))


def test_text_output_and_log_records_hold_no_token(
    setup: Setup, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    setup.snap.status = 403
    out = io.StringIO()
    assert cli.main(["diagnose", "-c", str(setup.config), "--probe", "--now", NOW], stdout=out) == 0
    text = out.getvalue()
    assert text.startswith("Open incidents: 1\n  auth-failures on ")  # what is open, since when, how many
    assert "8 failed (401: 8)" in text.splitlines()[1]
    assert "\nVerdict:\n  token-rejected-for-pixel: " in text
    assert "probe-rejected" in text and FP in text
    assert_probe_request(setup.snap)
    # The HTTP client logs each request line: it is there, with the token redacted.
    # The HTTP client logs each request line: the token, known to the probe, shows as its label.
    assert any(f"access_token=token {FP}" in r.getMessage() for r in caplog.records if r.name == "httpx")
    captured = capsys.readouterr()
    for blob in (text, captured.out, captured.err, *(r.getMessage() for r in snapwatch_records(caplog))):
        assert_no_secret(blob, TOKEN)


def test_now_judges_nbf_and_exp_at_that_time(tmp_path: Path) -> None:
    nbf, exp = datetime(2025, 12, 5, 9, 0, tzinfo=UTC), datetime(2025, 12, 5, 10, 0, tzinfo=UTC)
    oauth = ".".join([jwt_segment({"alg": "HS256", "typ": "JWT"}),
                      jwt_segment({"iss": "https://accounts.snapchat.com", "nbf": int(nbf.timestamp()),
                            "exp": int(exp.timestamp()), "sub": "someone"}),
                      "c2lnbmF0dXJlLW5vdC1yZWFsLWJ1dC1sb25nLWVub3VnaA"])
    with snap_server() as snap:
        # Two 401s: below the streak, so no incident is open and the present is judged at --now.
        config = write_setup(tmp_path, snap, oauth, [401, 401])
        before = diagnose(config, "--json", "--now", "2025-12-05T08:30:00+00:00", secret=oauth)
        during = diagnose(config, "--json", "--now", "2025-12-05T09:30:00+00:00", secret=oauth)
        after = diagnose(config, "--json", "--now", "2025-12-05T11:30:00+00:00", secret=oauth)
        assert snap.seen == []
    assert before["now"] == "2025-12-05T08:30:00+00:00"
    assert "token-not-yet-valid" in codes(before) and "token-expired" not in codes(before)
    assert any("nbf 2025-12-05T09:00:00+00:00" in line for line in finding(before, "token-not-yet-valid")["evidence"])
    assert not {"token-not-yet-valid", "token-expired"} & set(codes(during))
    assert "token-not-canvas" in codes(during)
    assert "token-expired" in codes(after) and "token-not-yet-valid" not in codes(after)
    expired = finding(after, "token-expired")
    assert expired["confidence"] == "high"
    assert any("exp 2025-12-05T10:00:00+00:00" in line for line in expired["evidence"])


def test_now_that_is_not_a_time_is_one_line_usage_error(setup: Setup) -> None:
    done = snapwatch_process("diagnose", "-c", str(setup.config), "--now", "soon")
    assert done.returncode == 2
    assert done.stderr.strip() == "snapwatch: --now 'soon' is not an ISO 8601 time"
    assert done.stdout == "" and setup.snap.seen == []
