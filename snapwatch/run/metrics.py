"""Prometheus metrics: the registry of snapwatch's series and the /metrics HTTP endpoint."""

from __future__ import annotations

import ipaddress
import logging
import re
import threading
from collections import Counter as Tally
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Info
from prometheus_client.exposition import start_http_server

from snapwatch import __version__
from snapwatch.errors import ConfigError
from snapwatch.model import Exchange, TokenKind
from snapwatch.redact import redact

log = logging.getLogger(__name__)

_FINGERPRINT = re.compile(r"[0-9a-f]{12}")  # tokens.fingerprint: 12 hex digits, never more of the token
ALERT_OUTCOMES = ("delivered", "failed", "expired")
STATE_ERROR_REASONS = ("full", "read-only", "locked", "io", "other")


def _code(status: int | None) -> str:
    return str(status) if status is not None else "none"


def _label(value: str) -> str:
    # Defence in depth: a label value built from a message or URL must never carry a credential.
    return redact(value)


class Metrics:
    """snapwatch's series in a registry of their own (never the process-global one).

    Every method is cheap and thread-safe (prometheus_client locks each child). The daemon calls:
    ``observe`` per exchange, ``set_streak`` after each detector step, ``set_open_incidents`` when
    incidents open or close, ``count_alert`` per delivery attempt, ``set_outbox`` after a delivery round,
    ``set_lag`` after each read, ``log_gap`` when the follower reports lost bytes. Label values are
    source names, rule names, verdicts, masked target names and token fingerprints; never a token or URL.
    """

    def __init__(self, version: str = __version__) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self._responses = Counter(
            "snapwatch_responses", "CAPI responses seen in the log.", ["source", "code"], registry=reg
        )
        self._requests = Counter(
            "snapwatch_requests", "CAPI requests seen in the log, by API version.", ["source", "api"], registry=reg
        )
        self._streak = Gauge(
            "snapwatch_streak",
            "Current length of each streak rule's run of failures.",
            ["source", "rule"],
            registry=reg,
        )
        self._incidents = Gauge(
            "snapwatch_incidents_open", "Open incidents by rule and verdict.", ["rule", "verdict"], registry=reg
        )
        self._alerts = Counter(
            "snapwatch_alerts", "Alert delivery attempts by target and outcome.", ["target", "outcome"], registry=reg
        )
        self._silences = Gauge(
            "snapwatch_silences_active", "Silences in force (snapwatch silence add): their alerts are not sent.",
            registry=reg,
        )
        self._pending = Gauge(
            "snapwatch_outbox_pending", "Alerts waiting in the outbox, by target.", ["target"], registry=reg
        )
        self._lag = Gauge(
            "snapwatch_lag_bytes",
            "Bytes between the read position and the end of the followed file.",
            ["source"],
            registry=reg,
        )
        self._last_record = Gauge(
            "snapwatch_last_record_timestamp_seconds",
            "Time of the newest record read, Unix seconds.",
            ["source"],
            registry=reg,
        )
        self._gaps = Counter(
            "snapwatch_log_gaps", "Log gaps (bytes lost to rotation or truncation).", ["source"], registry=reg
        )
        self._gap_bytes = Counter("snapwatch_log_gap_bytes", "Bytes of log lost in gaps.", ["source"], registry=reg)
        self._state_errors = Counter(
            "snapwatch_state_errors",
            "Failed attempts to save the state file (disk full, read-only, locked, I/O error), by reason.",
            ["reason"],
            registry=reg,
        )
        for reason in STATE_ERROR_REASONS:  # every series exists from the start, so rate() sees the first one
            self._state_errors.labels(reason)
        self._token_seen = Gauge(
            "snapwatch_token_last_seen_timestamp_seconds",
            "When a token (by fingerprint, never the token) was last seen in a request, Unix seconds.",
            ["fingerprint", "kind"],
            registry=reg,
        )
        Info("snapwatch_build", "snapwatch's version.", registry=reg).info({"version": version})
        self._lock = threading.Lock()  # guards the label sets below, not the series themselves
        self._incident_keys: set[tuple[str, str]] = set()
        self._pending_keys: set[str] = set()
        self._newest: dict[tuple[object, ...], float] = {}
        self._bad_fp_logged = False

    def start_server(self, listen: str) -> MetricsServer:
        """Serve these metrics on ``listen``; see :func:`start_server`."""
        return start_server(self, listen)

    # --- the log -------------------------------------------------------------------------------------------

    def observe(self, exchange: Exchange) -> None:
        """Count one exchange: its response code, its request's API, its time, and its token's fingerprint."""
        source = exchange.source
        self._responses.labels(source, _code(exchange.status)).inc()
        self._record_time(source, exchange.at)
        req = exchange.request
        if req is None:
            return
        self._requests.labels(source, req.api.value).inc()
        if req.token_fp is not None:
            try:
                self.token_seen(req.token_fp, req.token_kind, req.at)
            except ValueError as exc:
                if not self._bad_fp_logged:  # once: a broken fingerprint would repeat on every request
                    log.warning("token metric skipped: %s", exc)
                    self._bad_fp_logged = True

    def _record_time(self, source: str, at: datetime) -> None:
        self._set_newest(self._last_record, (source,), at)

    def _set_newest(self, gauge: Gauge, labels: tuple[str, ...], at: datetime) -> None:
        # Records may arrive out of order across a rotation; a time gauge keeps the newest.
        stamp, key = at.timestamp(), (id(gauge), *labels)
        with self._lock:
            if stamp > self._newest.get(key, float("-inf")):
                self._newest[key] = stamp
                gauge.labels(*labels).set(stamp)

    def token_seen(self, fp: str, kind: TokenKind | None, at: datetime) -> None:
        """Mark fingerprint ``fp`` seen at ``at`` (an earlier time never replaces a later one).

        Raises ValueError for anything but a 12-hex-digit fingerprint, so a token can never become a label.
        """
        if not _FINGERPRINT.fullmatch(fp):
            raise ValueError(f"not a token fingerprint (expected 12 hex digits, got {len(fp)} characters)")
        self._set_newest(self._token_seen, (fp, kind.value if kind is not None else "unknown"), at)

    def set_lag(self, source: str, lag_bytes: int) -> None:
        """Bytes behind the end of ``source``'s file right now."""
        self._lag.labels(source).set(max(0, lag_bytes))

    def log_gap(self, source: str, lost_bytes: int) -> None:
        """One gap in ``source`` of ``lost_bytes`` bytes (0 when the size is unknown)."""
        self._gaps.labels(source).inc()
        self._gap_bytes.labels(source).inc(max(0, lost_bytes))

    def state_error(self, reason: str) -> None:
        """One failed attempt to save the state file (``reason``: full, read-only, locked, io or other)."""
        self._state_errors.labels(reason).inc()

    # --- detection -----------------------------------------------------------------------------------------

    def set_streak(self, source: str, rule: str, length: int) -> None:
        """The current length of ``rule``'s failure run on ``source`` (0 once it breaks)."""
        self._streak.labels(source, str(rule)).set(max(0, length))

    def set_open_incidents(self, open_incidents: Iterable[tuple[str, str]]) -> None:
        """Replace the open-incident counts with one ``(rule, verdict)`` pair per open incident.

        Pairs that were open before and are not now read 0, so a rule on ``> 0`` sees the change.
        """
        counts = Tally((str(rule), verdict) for rule, verdict in open_incidents)
        with self._lock:
            for key in self._incident_keys | set(counts):
                self._incidents.labels(*key).set(counts.get(key, 0))
            self._incident_keys |= set(counts)

    # --- alerts --------------------------------------------------------------------------------------------

    def count_alert(self, target: str, outcome: str, n: int = 1) -> None:
        """Count ``n`` delivery outcomes for ``target`` (its masked display form).

        ``outcome`` is ``delivered``, ``failed`` (an attempt failed, a retry follows) or ``expired`` (given up).
        """
        if outcome not in ALERT_OUTCOMES:
            raise ValueError(f"unknown alert outcome {outcome!r} (expected one of {', '.join(ALERT_OUTCOMES)})")
        self._alerts.labels(_label(target), outcome).inc(n)

    def set_silences(self, active: int) -> None:
        self._silences.set(active)

    def set_outbox(self, target_counts: Mapping[str, Mapping[str, int]]) -> None:
        """Pending rows per target, from ``outbox.Outbox.target_counts()`` (keyed by masked display form)."""
        pending = {_label(t): counts.get("pending", 0) for t, counts in target_counts.items()}
        with self._lock:
            for target in self._pending_keys | set(pending):
                self._pending.labels(target).set(pending.get(target, 0))
            self._pending_keys |= set(pending)


# --- the endpoint --------------------------------------------------------------------------------------------


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) as ``(host, port)``; raises ConfigError with a one-line reason."""
    host, sep, port_text = listen.strip().rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"metrics.listen: {listen!r} is not HOST:PORT (for example 127.0.0.1:9464)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise ConfigError(f"metrics.listen: {listen!r} has no host (use 127.0.0.1:PORT, or 0.0.0.0:PORT for all)")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not re.fullmatch(r"[A-Za-z0-9.-]+", host):
            raise ConfigError(f"metrics.listen: {host!r} is not an address or host name") from None
    return host, int(port_text)


@dataclass(slots=True)
class MetricsServer:
    """The running /metrics endpoint. ``close`` stops it and frees the socket; calling it twice is harmless."""

    host: str
    port: int
    _httpd: WSGIServer
    _thread: threading.Thread
    _closed: bool = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def start_server(metrics: Metrics, listen: str) -> MetricsServer:
    """Serve ``metrics`` on ``listen`` (``host:port``, port 0 picks a free one) in a background thread.

    Raises ConfigError for a malformed address, SnapwatchError when the address cannot be bound.
    """
    host, port = parse_listen(listen)
    try:
        httpd, thread = start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as exc:  # an address run cannot use is a configuration problem: exit 78, not a restart loop
        raise ConfigError(f"metrics.listen: cannot listen on {listen}: {exc.strerror or exc}") from exc
    log.info("metrics on http://%s:%d/metrics", host, httpd.server_port)
    return MetricsServer(host, httpd.server_port, httpd, thread)
