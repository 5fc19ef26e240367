"""What a report shows, as plain values: the ReportData the renderer reads, and the status classes.

Everything here is frozen, slotted and free of I/O and clock reads. The caller (scan, the daemon's
history) fills it in; the renderer (``page.render_report``) only reads it. Fingerprints are 12 hex
digits and never tokens; every string is HTML-escaped when rendered all the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Final

# The status classes the timeline stacks, bottom to top. "other" holds what is none of the rest
# (no status line, 1xx, 3xx), so that the bars always add up to every response counted.
CLASS_2XX: Final = "2xx"
CLASS_AUTH: Final = "401/403"
CLASS_429: Final = "429"
CLASS_5XX: Final = "5xx"
CLASS_4XX: Final = "other-4xx"
CLASS_OTHER: Final = "other"
CLASSES: Final[tuple[str, ...]] = (CLASS_2XX, CLASS_AUTH, CLASS_429, CLASS_5XX, CLASS_4XX, CLASS_OTHER)

MINUTE: Final = timedelta(minutes=1)


def status_class(status: int | None) -> str:
    """The timeline class of one response status (None: the response had no status line)."""
    if status is None:
        return CLASS_OTHER
    if 200 <= status < 300:
        return CLASS_2XX
    if status in (401, 403):
        return CLASS_AUTH
    if status == 429:
        return CLASS_429
    if 500 <= status < 600:
        return CLASS_5XX
    if 400 <= status < 500:
        return CLASS_4XX
    return CLASS_OTHER


def floor_minute(at: datetime) -> datetime:
    """The start of the minute ``at`` falls in (same tzinfo)."""
    return at.replace(second=0, microsecond=0)


def _aware(at: datetime, what: str) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware: {at.isoformat()}")


@dataclass(frozen=True, slots=True)
class Bucket:
    """The responses of one minute (or, once aggregated, of ``width`` minutes) by class.

    ``counts`` maps a class of ``CLASSES`` to its count; a missing class counts zero.
    """

    start: datetime
    counts: Mapping[str, int]

    def __post_init__(self) -> None:
        _aware(self.start, "a bucket's start")
        unknown = set(self.counts) - set(CLASSES)
        if unknown:
            raise ValueError(f"unknown status classes: {sorted(unknown)}")
        if any(n < 0 for n in self.counts.values()):
            raise ValueError("a bucket count cannot be negative")

    def count(self, cls: str) -> int:
        return self.counts.get(cls, 0)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def minute_buckets(responses: Iterable[tuple[datetime, int | None]]) -> tuple[Bucket, ...]:
    """Per-minute buckets from (time, status) pairs, in time order; minutes without a response are left out."""
    by_minute: dict[datetime, dict[str, int]] = {}
    for at, status in responses:
        _aware(at, "a response time")
        counts = by_minute.setdefault(floor_minute(at), {})
        cls = status_class(status)
        counts[cls] = counts.get(cls, 0) + 1
    return tuple(Bucket(start, counts) for start, counts in sorted(by_minute.items()))


@dataclass(frozen=True, slots=True)
class ReportFinding:
    """One ranked explanation of an incident, as ``model.Finding`` holds it, in plain strings."""

    code: str
    severity: str  # "critical" | "warning" | "info"
    confidence: str  # "high" | "medium" | "low"
    title: str
    evidence: tuple[str, ...] = ()
    remediation: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ReportDiagnosis:
    """Findings most likely first, and the causes the evidence ruled out."""

    findings: tuple[ReportFinding, ...] = ()
    ruled_out: tuple[str, ...] = ()


UNKNOWN_VERDICT: Final = "unknown"


@dataclass(frozen=True, slots=True)
class ReportIncident:
    """One incident with its verdict summary (the table row) and its full diagnosis (the section)."""

    id: str
    rule: str
    source: str
    opened_at: datetime
    resolved_at: datetime | None  # None while it is open
    duration: timedelta  # until resolved, or until the report's end while open
    failed: int  # failed responses counted into it
    by_status: Mapping[str, int]
    verdict: str  # the top finding's code, or "unknown"
    verdict_title: str
    severity: str
    confidence: str
    first_step: str  # the top finding's first remediation step ("" when there is none)
    diagnosis: ReportDiagnosis = field(default_factory=ReportDiagnosis)

    def __post_init__(self) -> None:
        _aware(self.opened_at, "an incident's opened_at")
        if self.resolved_at is not None:
            _aware(self.resolved_at, "an incident's resolved_at")

    @classmethod
    def of(
        cls,
        *,
        id: str,
        rule: str,
        source: str,
        opened_at: datetime,
        resolved_at: datetime | None,
        duration: timedelta,
        failed: int,
        by_status: Mapping[str, int],
        diagnosis: ReportDiagnosis,
    ) -> ReportIncident:
        """An incident whose verdict fields are taken from its diagnosis's top cause (an info note is never one)."""
        top = next((f for f in diagnosis.findings if f.severity != "info"), None)
        return cls(
            id=id,
            rule=rule,
            source=source,
            opened_at=opened_at,
            resolved_at=resolved_at,
            duration=duration,
            failed=failed,
            by_status=by_status,
            verdict=top.code if top else UNKNOWN_VERDICT,
            verdict_title=top.title if top else "No likely cause found",
            severity=top.severity if top else "",
            confidence=top.confidence if top else "",
            first_step=top.remediation[0] if top and top.remediation else "",
            diagnosis=diagnosis,
        )


@dataclass(frozen=True, slots=True)
class TokenChange:
    """The backend started sending another token (``before`` is None when no token was seen before)."""

    at: datetime
    before: str | None
    after: str


@dataclass(frozen=True, slots=True)
class EnvChange:
    """The configured ``.env`` changed; ``fingerprint`` is the token it now holds (None: no token in it)."""

    at: datetime
    fingerprint: str | None


@dataclass(frozen=True, slots=True)
class Restart:
    """The backend's unit (re)started."""

    at: datetime
    unit: str


@dataclass(frozen=True, slots=True)
class LogGap:
    """Part of a log could not be read (rotated away while snapwatch was down, for instance)."""

    at: datetime
    file: str
    description: str


Marker = TokenChange | EnvChange | Restart | LogGap


@dataclass(frozen=True, slots=True)
class ReportToken:
    """One token seen in request URLs, by fingerprint, with how its responses went."""

    fingerprint: str
    kind: str
    first_seen: datetime
    last_seen: datetime
    accepted: int
    rejected: int


@dataclass(frozen=True, slots=True)
class ReportData:
    """Everything one report shows. ``tz`` is the zone every time is displayed in.

    ``conversions_lost`` is the number of failed responses, counted by the caller; the renderer does
    not second-guess it. ``buckets`` are per minute (see ``minute_buckets``), in any order.
    """

    host: str
    sources: tuple[str, ...]
    start: datetime
    end: datetime
    tz: tzinfo
    totals_by_status: Mapping[str, int]
    requests: int
    conversions_lost: int
    buckets: tuple[Bucket, ...] = ()
    incidents: tuple[ReportIncident, ...] = ()
    markers: tuple[Marker, ...] = ()
    tokens: tuple[ReportToken, ...] = ()
    generated_at: datetime | None = None  # shown in the footer when given (the renderer reads no clock)

    def __post_init__(self) -> None:
        _aware(self.start, "the report's start")
        _aware(self.end, "the report's end")
        if self.end < self.start:
            raise ValueError("the report's end is before its start")
        for marker in self.markers:
            _aware(marker.at, "a marker's time")

    @property
    def responses(self) -> int:
        """Responses counted in the header's totals."""
        return sum(self.totals_by_status.values())
