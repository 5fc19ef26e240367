"""The live probe: one test event to Snap's v3 validate endpoint, rate-limited, never leaking the token."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from urllib.parse import quote

import httpx

from snapwatch.ingest.tokens import fingerprint
from snapwatch.model import ProbeOutcome, ProbeResult
from snapwatch.redact import SECRETS, RedactingFilter, redact

log = logging.getLogger(__name__)

TEST_EMAIL = "snapwatch-probe@example.com"
TEST_IP = "203.0.113.7"  # TEST-NET-3: documentation address, never a real user
USER_AGENT = "snapwatch-probe"
_DETAIL_LIMIT = 300

_HTTP_LOGGERS = (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)


def _install_log_filter() -> None:
    # A logger's filters see only records created on that very logger, hence one per httpcore child.
    for name in _HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())


_install_log_filter()


def validate_body(now: datetime) -> dict[str, object]:
    """The minimal v3 validate payload: one PAGE_VIEW test event with a hashed test email, IP and UA."""
    email = hashlib.sha256(TEST_EMAIL.strip().lower().encode()).hexdigest()
    return {
        "data": [
            {
                "event_name": "PAGE_VIEW",
                "event_time": int(now.timestamp()),
                "action_source": "WEB",
                "event_source_url": "https://example.com/",
                "user_data": {"em": [email], "client_ip_address": TEST_IP, "client_user_agent": USER_AGENT},
            }
        ]
    }


def _scrub(text: str, token: str) -> str:
    text = redact(text)
    for form in {token, quote(token, safe="")}:
        if form:
            text = text.replace(form, f"[token {fingerprint(token)}]")
    return text[:_DETAIL_LIMIT]


def _judge(status: int, body: str, token: str) -> tuple[ProbeOutcome, str]:
    """Map Snap's answer to an outcome.

    Any 2xx is ACCEPTED: authentication passed, even when the test event itself is reported INVALID
    (that is about the payload, not the token). 401/403 are REJECTED. Everything else (400, 429, 5xx,
    redirects) is FAILED: it says nothing reliable about the token.
    """
    snap_status, reason = "", ""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        snap_status, reason = str(parsed.get("status", "")), str(parsed.get("reason", ""))
    said = " ".join(part for part in (snap_status, reason) if part) or body.strip()[:120]
    detail = _scrub(f"HTTP {status}" + (f": {said}" if said else ""), token)
    if 200 <= status < 300:
        return ProbeOutcome.ACCEPTED, detail
    if status in (401, 403):
        return ProbeOutcome.REJECTED, detail
    return ProbeOutcome.FAILED, detail


def _failure(exc: Exception, token: str, timeout: float) -> str:
    # httpx exception messages can carry the request URL, and with it the token: scrub every one.
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {timeout:g} s ({type(exc).__name__})"
    return _scrub(f"{type(exc).__name__}: {exc}", token)


class Prober:
    """Asks ``{base_url}/v3/{pixel}/events/validate`` whether Snap accepts a token, at most once per
    ``min_interval`` and never twice at a time (shared by ``probe`` and ``aprobe``, thread-safe).

    ``probe``/``aprobe`` return None when rate-limited or when another probe is in flight. Every probe
    started counts toward the interval, failed ones too, so an outage is not hammered.
    """

    def __init__(
        self,
        base_url: str,
        timeout: float,
        min_interval: timedelta,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._timeout = timeout
        self._min_interval = min_interval
        self._transport = transport
        self._lock = threading.Lock()
        self._in_flight = False
        self._last: datetime | None = None

    def _url(self, pixel: str) -> str:
        return f"{self._base}/v3/{quote(pixel.strip(), safe='')}/events/validate"

    @contextmanager
    def _slot(self, now: datetime) -> Iterator[bool]:
        with self._lock:
            free = not self._in_flight and (self._last is None or now - self._last >= self._min_interval)
            if free:
                self._in_flight, self._last = True, now
        try:
            yield free
        finally:
            if free:
                with self._lock:
                    self._in_flight = False

    def probe(self, token: str, pixel: str, now: datetime) -> ProbeResult | None:
        """Send the test event now (blocking); None when rate-limited or a probe is in flight."""
        SECRETS.add(token)
        if not pixel.strip():
            return ProbeResult(ProbeOutcome.FAILED, None, "no pixel id to probe", now, 0.0)
        with self._slot(now) as free:
            if not free:
                return None
            started = time.perf_counter()
            try:
                with httpx.Client(transport=self._transport, timeout=self._timeout) as client:
                    response = client.post(self._url(pixel), params={"access_token": token}, json=validate_body(now))
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                return self._failed(exc, token, now, started)
            return self._answered(response, token, now, started)

    async def aprobe(self, token: str, pixel: str, now: datetime) -> ProbeResult | None:
        """``probe`` for the asyncio daemon: the same call on a worker thread (a probe is rare; one code path)."""
        return await asyncio.to_thread(self.probe, token, pixel, now)

    def _answered(self, response: httpx.Response, token: str, now: datetime, started: float) -> ProbeResult:
        elapsed = time.perf_counter() - started
        outcome, detail = _judge(response.status_code, response.text, token)
        log.info("probe of token %s: %s (%s) in %.2f s", fingerprint(token), outcome, detail, elapsed)
        return ProbeResult(outcome, response.status_code, detail, now, elapsed)

    def _failed(self, exc: Exception, token: str, now: datetime, started: float) -> ProbeResult:
        elapsed = time.perf_counter() - started
        detail = _failure(exc, token, self._timeout)
        log.info("probe of token %s failed: %s", fingerprint(token), detail)
        return ProbeResult(ProbeOutcome.FAILED, None, detail, now, elapsed)
