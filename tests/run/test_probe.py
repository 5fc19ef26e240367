"""The live probe against a stand-in for Snap's validate endpoint on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from snapwatch.ingest.tokens import fingerprint
from snapwatch.model import ProbeOutcome, ProbeResult
from snapwatch.redact import redact
from snapwatch.run.probe import Prober
from tests.helpers.peers import FakeSnap, snap_server
from tests.helpers.tokens import assert_clean, canvas

NOW = datetime(2025, 12, 3, 23, 35, 17, tzinfo=UTC)
PIXEL = "a1b2c3d4-pixel"
EMAIL_HASH = hashlib.sha256(b"snapwatch-probe@example.com").hexdigest()


@pytest.fixture
def snap() -> Iterator[FakeSnap]:
    with snap_server() as fake:
        yield fake


def check_clean(result: ProbeResult | None, token: str, caplog: pytest.LogCaptureFixture) -> None:
    assert result is not None
    assert_clean(repr(result) + str(result) + result.detail, token)
    assert_clean(caplog.text, token)
    for record in caplog.records:
        assert_clean(record.getMessage(), token)


def prober(snap: FakeSnap, timeout: float = 5.0, interval: timedelta = timedelta(minutes=5)) -> Prober:
    return Prober(snap.base_url, timeout, interval)


def test_accepted_and_the_request_snap_receives(snap: FakeSnap, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = canvas()
    result = prober(snap).probe(token, PIXEL, NOW)
    assert result is not None
    assert result.outcome is ProbeOutcome.ACCEPTED
    assert result.status == 200
    assert "VALID" in result.detail
    assert result.at == NOW
    assert 0 <= result.elapsed < 5
    [seen] = snap.seen
    assert seen.method == "POST"
    assert seen.path == f"/v3/{PIXEL}/events/validate"
    assert seen.query == {"access_token": [token]}
    assert seen.content_type == "application/json"
    assert seen.body["data"] == [
        {
            "event_name": "PAGE_VIEW",
            "event_time": int(NOW.timestamp()),
            "action_source": "WEB",
            "event_source_url": "https://example.com/",
            "user_data": {
                "em": [EMAIL_HASH],
                "client_ip_address": "203.0.113.7",
                "client_user_agent": "snapwatch-probe",
            },
        }
    ]
    check_clean(result, token, caplog)
    # httpx logged the request line, with the token (known to the probe) shown as its label, not dropped.
    shown = f"access_token=token {fingerprint(token)}"
    assert any(shown in r.getMessage() for r in caplog.records if r.name == "httpx")
    assert any(r.name.startswith("httpcore") for r in caplog.records)


def test_invalid_event_still_means_the_token_was_accepted(snap: FakeSnap, caplog: pytest.LogCaptureFixture) -> None:
    snap.body = '{"status": "INVALID", "reason": "event_time out of range"}'
    result = prober(snap).probe(canvas(), PIXEL, NOW)
    assert result is not None
    assert result.outcome is ProbeOutcome.ACCEPTED
    assert "INVALID" in result.detail


@pytest.mark.parametrize("status", [401, 403])
def test_rejected(snap: FakeSnap, caplog: pytest.LogCaptureFixture, status: int) -> None:
    caplog.set_level(logging.DEBUG)
    token = canvas()
    snap.status = status
    # A server that echoes the request URL, token and all, must not get it into the detail.
    snap.body = f'{{"status": "UNAUTHORIZED", "reason": "bad token {token} for /v3?access_token={token}"}}'
    result = prober(snap).probe(token, PIXEL, NOW)
    assert result is not None
    assert (result.outcome, result.status) == (ProbeOutcome.REJECTED, status)
    check_clean(result, token, caplog)


@pytest.mark.parametrize("status", [500, 503, 429, 400])
def test_other_answers_fail(snap: FakeSnap, status: int) -> None:
    snap.status, snap.body = status, "upstream trouble"
    result = prober(snap).probe(canvas(), PIXEL, NOW)
    assert result is not None
    assert (result.outcome, result.status) == (ProbeOutcome.FAILED, status)
    assert result.detail == f"HTTP {status}: upstream trouble"


def test_timeout(snap: FakeSnap, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = canvas()
    snap.hold = 10.0
    result = prober(snap, timeout=0.3).probe(token, PIXEL, NOW)
    assert result is not None
    assert (result.outcome, result.status) == (ProbeOutcome.FAILED, None)
    assert "no answer within 0.3 s" in result.detail
    assert 0.25 <= result.elapsed < 5
    check_clean(result, token, caplog)


def test_slow_but_within_the_timeout(snap: FakeSnap) -> None:
    snap.hold = 0.3
    result = prober(snap, timeout=5).probe(canvas(), PIXEL, NOW)
    assert result is not None
    assert result.outcome is ProbeOutcome.ACCEPTED
    assert result.elapsed >= 0.25


def test_connection_refused_and_bad_url(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = canvas()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    result = Prober(f"http://127.0.0.1:{port}", 2, timedelta(0)).probe(token, PIXEL, NOW)
    assert result is not None
    assert (result.outcome, result.status) == (ProbeOutcome.FAILED, None)
    assert result.detail.startswith("ConnectError")
    check_clean(result, token, caplog)
    result = Prober("ftp:/nowhere", 2, timedelta(0)).probe(token, PIXEL, NOW)
    assert result is not None
    assert result.outcome is ProbeOutcome.FAILED
    check_clean(result, token, caplog)


def test_no_pixel_sends_nothing(snap: FakeSnap) -> None:
    result = prober(snap).probe(canvas(), "  ", NOW)
    assert result is not None
    assert result.outcome is ProbeOutcome.FAILED
    assert snap.seen == []


def test_rate_limited_within_min_interval(snap: FakeSnap) -> None:
    p = prober(snap, interval=timedelta(minutes=5))
    token = canvas()
    assert p.probe(token, PIXEL, NOW) is not None
    assert p.probe(token, PIXEL, NOW + timedelta(minutes=4, seconds=59)) is None
    assert p.probe(token, PIXEL, NOW + timedelta(minutes=5)) is not None
    assert len(snap.seen) == 2


def test_one_probe_in_flight_at_a_time(snap: FakeSnap) -> None:
    p = prober(snap, interval=timedelta(0))
    token = canvas()
    snap.hold = 10.0
    results: list[ProbeResult | None] = []
    first = threading.Thread(target=lambda: results.append(p.probe(token, PIXEL, NOW)))
    first.start()
    assert snap.received.wait(5)
    assert p.probe(token, PIXEL, NOW + timedelta(hours=1)) is None  # the first is still waiting on Snap
    snap.release.set()
    first.join(5)
    assert results[0] is not None
    assert results[0].outcome is ProbeOutcome.ACCEPTED
    assert p.probe(token, PIXEL, NOW + timedelta(hours=1)) is not None  # free again


def test_async_probe_shares_the_limiter(snap: FakeSnap, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = canvas()
    p = prober(snap)
    result = asyncio.run(p.aprobe(token, PIXEL, NOW))
    assert result is not None
    assert result.outcome is ProbeOutcome.ACCEPTED
    assert snap.seen[0].query == {"access_token": [token]}
    check_clean(result, token, caplog)
    assert p.probe(token, PIXEL, NOW + timedelta(minutes=1)) is None
    assert asyncio.run(p.aprobe(token, PIXEL, NOW + timedelta(minutes=1))) is None


def test_async_rejected_and_timeout(snap: FakeSnap) -> None:
    snap.status = 401
    result = asyncio.run(prober(snap, interval=timedelta(0)).aprobe(canvas(), PIXEL, NOW))
    assert result is not None
    assert result.outcome is ProbeOutcome.REJECTED
    snap.hold = 10.0
    result = asyncio.run(prober(snap, timeout=0.3).aprobe(canvas(), PIXEL, NOW))
    assert result is not None
    assert (result.outcome, result.status) == (ProbeOutcome.FAILED, None)


def test_redact() -> None:
    assert redact("GET /v3/p/events?access_token=abc.def-ghi&x=1") == "GET /v3/p/events?access_token=[redacted]&x=1"
    assert redact("url=%2Fv3%3Faccess_token%3Dabc.def") == "url=%2Fv3%3Faccess_token%3D[redacted]"
