"""The shapes that cross stage boundaries: requests, responses, exchanges, incidents, findings.

Frozen, slotted dataclasses and string enums whose values are the contract's strings
(``../docs/contract.md``). Nothing here does I/O or reads the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Api(StrEnum):
    """The CAPI version a request went to."""

    V2 = "v2"
    V3 = "v3"
    UNKNOWN = "unknown"


class Placement(StrEnum):
    """Where a request carried its access token."""

    QUERY = "query"  # ?access_token=… (what v3 wants)
    HEADER = "header"  # Authorization: Bearer … (what v2 wants; only known when headers are logged)
    NONE = "none"  # the logged request shows no token where it could have been seen
    UNKNOWN = "unknown"  # the log cannot tell (v2 logs no headers)


class TokenKind(StrEnum):
    """What a token is, from its shape and claims alone."""

    CANVAS_S2S = "canvas-s2s"
    CANVAS_S2S_STAGING = "canvas-s2s-staging"
    JWT_OTHER = "jwt-other"
    OPAQUE = "opaque"
    MALFORMED = "malformed"


class Rule(StrEnum):
    """The incident rules of the contract."""

    AUTH_FAILURES = "auth-failures"
    RATE_LIMITED = "rate-limited"
    SERVER_ERRORS = "server-errors"
    INVALID_EVENTS = "invalid-events"
    ERROR_RATE = "error-rate"
    SILENCE = "silence"


class FindingCode(StrEnum):
    """Every finding code of the contract."""

    TOKEN_MISSING = "token-missing"
    TOKEN_MALFORMED = "token-malformed"
    TOKEN_QUOTED = "token-quoted"
    TOKEN_WHITESPACE = "token-whitespace"
    TOKEN_BEARER_PREFIX = "token-bearer-prefix"
    TOKEN_NOT_CANVAS = "token-not-canvas"
    TOKEN_EXPIRED = "token-expired"
    TOKEN_NOT_YET_VALID = "token-not-yet-valid"
    TOKEN_RECENTLY_ISSUED = "token-recently-issued"
    TOKEN_STAGING = "token-staging"
    TOKEN_DRIFT = "token-drift"
    TOKEN_CHANGED = "token-changed"
    TOKEN_PREVIOUSLY_ACCEPTED = "token-previously-accepted"
    TOKEN_REVOKED = "token-revoked"
    TOKEN_UNLOGGED = "token-unlogged"
    TOKEN_REJECTED_FOR_PIXEL = "token-rejected-for-pixel"
    AUTH_PLACEMENT = "auth-placement"
    ENDPOINT_CHANGED = "endpoint-changed"
    PIXEL_CHANGED = "pixel-changed"
    PIXEL_MALFORMED = "pixel-malformed"
    V2_DEPRECATED = "v2-deprecated"
    PROBE_ACCEPTED = "probe-accepted"
    PROBE_REJECTED = "probe-rejected"
    PROBE_FAILED = "probe-failed"
    RATE_LIMITED = "rate-limited"
    SERVER_ERRORS = "server-errors"
    INVALID_EVENTS = "invalid-events"
    LOG_SILENT = "log-silent"
    LOG_GAP = "log-gap"
    TOKEN_IN_LOG = "token-in-log"


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class Confidence(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


@dataclass(frozen=True, slots=True)
class Request:
    """One logged outgoing CAPI call. Carries the token's fingerprint, never the token."""

    at: datetime
    event: str
    api: Api
    path: str  # URL path without query, e.g. "/v3/<pixel>/events"; "" when no URL was logged
    pixel: str | None  # pixel or Snap app id from a v3 path (v2 carries it in the payload)
    placement: Placement
    token_fp: str | None
    token_kind: TokenKind | None


@dataclass(frozen=True, slots=True)
class Response:
    """One logged CAPI answer. ``body`` is the raw body text; parse it lazily (body.body_fields)."""

    at: datetime
    event: str
    status: int | None  # None when the block had no status line (counted as malformed)
    body: str = ""


@dataclass(frozen=True, slots=True)
class Exchange:
    """A response paired with its request (``request`` is None when the request was not seen)."""

    response: Response
    request: Request | None
    source: str = ""

    @property
    def at(self) -> datetime:
        return self.response.at

    @property
    def status(self) -> int | None:
        return self.response.status

    @property
    def ok(self) -> bool:
        s = self.response.status
        return s is not None and 200 <= s < 300

    @property
    def auth_failed(self) -> bool:
        return self.response.status in (401, 403)


@dataclass(frozen=True, slots=True)
class Finding:
    """One ranked explanation with its evidence and concrete remediation steps."""

    code: FindingCode
    severity: Severity
    confidence: Confidence
    title: str
    evidence: tuple[str, ...] = ()
    remediation: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "code": self.code.value,
            "severity": self.severity.value,
            "confidence": self.confidence.value,
            "title": self.title,
            "evidence": list(self.evidence),
            "remediation": list(self.remediation),
        }


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """Findings ranked most likely first: causes (warning, critical) before notes (info).

    ``verdict`` is the first finding's code when it names a cause, else "unknown" (only notes: what
    was checked). ``recovery`` says what changed when a resolved incident recovered (empty while open),
    ``working_token`` which token the requests carry since.
    """

    findings: tuple[Finding, ...] = ()
    ruled_out: tuple[str, ...] = ()
    recovery: tuple[str, ...] = ()
    working_token: str | None = None  # the fingerprint the requests carry since the recovery, when logged

    @property
    def cause(self) -> Finding | None:
        """The finding the verdict names; None when no finding names a cause (notes only)."""
        first = self.findings[0] if self.findings else None
        return first if first is not None and first.severity is not Severity.INFO else None

    @property
    def verdict(self) -> str:
        cause = self.cause
        return cause.code.value if cause is not None else "unknown"

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "verdict": self.verdict,
            "findings": [f.to_json() for f in self.findings],
            "ruled_out": list(self.ruled_out),
        }
        if self.recovery:
            out["recovery"] = list(self.recovery)
        if self.working_token is not None:
            out["working_token"] = self.working_token
        return out


@dataclass(frozen=True, slots=True)
class Incident:
    """An incident as the detector sees it at one moment (a snapshot, replaced on every change)."""

    id: str  # stable: "<rule>:<source>:<opened_at iso>" hashed, see detect.incident_id
    rule: Rule
    source: str
    opened_at: datetime
    resolved_at: datetime | None
    responses: int  # failed responses counted into the incident
    by_status: tuple[tuple[str, int], ...]  # sorted (status, count); "none" for a missing status
    last_at: datetime  # time of the last record that touched it
    first_failure: Exchange | None = None  # the exchange that started the streak (evidence)

    @property
    def open(self) -> bool:
        return self.resolved_at is None


class TransitionKind(StrEnum):
    OPENED = "opened"
    UPDATED = "updated"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Transition:
    kind: TransitionKind
    incident: Incident


@dataclass(slots=True)
class ParseStats:
    """What the parser could not take at face value; every count is reported, nothing is dropped silently."""

    lines: int = 0
    invalid_utf8: int = 0  # lines with bytes that are not UTF-8 (decoded with replacement)
    nul_bytes: int = 0  # lines that contained NUL bytes (removed)
    long_lines: int = 0  # lines over the maximum length (cut at the maximum)
    truncated_bodies: int = 0  # response bodies whose JSON never closed
    responses_without_status: int = 0
    unpaired_responses: int = 0  # responses whose request was never seen
    unpaired_requests: int = 0  # requests that never got a response (at end of input)
    bad_timestamps: int = 0
    malformed_records: int = 0  # records of the configured format that could not be read
    extra: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, int]:
        out = {
            "invalid_utf8": self.invalid_utf8,
            "nul_bytes": self.nul_bytes,
            "long_lines": self.long_lines,
            "truncated_bodies": self.truncated_bodies,
            "responses_without_status": self.responses_without_status,
            "unpaired_responses": self.unpaired_responses,
            "unpaired_requests": self.unpaired_requests,
            "bad_timestamps": self.bad_timestamps,
            "malformed_records": self.malformed_records,
        }
        out.update(self.extra)
        return out


class AlertKind(StrEnum):
    """Why an alert is sent."""

    OPENED = "opened"
    REMINDER = "reminder"
    UPDATE = "update"  # the diagnosis changed materially
    RESOLVED = "resolved"
    HELD_BACK = "held-back"  # max_per_hour bit: says how many were held back
    TEST = "test"
    NOTICE = "notice"  # about snapwatch itself (it cannot save its state), sent directly, not through the outbox


@dataclass(frozen=True, slots=True)
class Alert:
    """One message owed to the operator about one incident (or a test). ``id`` is stable across retries."""

    id: str
    kind: AlertKind
    created_at: datetime
    host: str
    incident: Incident | None = None
    diagnosis: Diagnosis | None = None
    token_fp: str | None = None
    token_kind: TokenKind | None = None
    held_back: int = 0  # for HELD_BACK: how many messages the cap withheld
    related: tuple[Incident, ...] = ()  # other incidents that opened within group_wait of this one
    folded: tuple[Incident, ...] = ()  # incidents this one explains (inhibited): not announced on their own
    # (verdict, severity) as last announced: a RESOLVED alert ends the label set it fired with, whatever its
    # final verdict says
    announced: tuple[str, str] | None = None
    flaps: int = 0  # for an OPENED blip announced as flapping: short incidents of its rule and source in the hour


# -- hand-offs between the I/O stages (follower, store, probe) -------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where reading of ``path`` resumes: just after the last complete line handed out.

    ``(dev, inode)`` names the file holding that position: the file at ``path``, or a rotated backup
    while it is read. ``fingerprint`` (see ``rotation.fingerprint()``) tells that file from a truncated,
    regrown or replaced one with the same inode, and finds it among compressed backups.
    ``mtime_ns`` is the file's modification time when it was read. ``inode == 0`` means "the file
    was read completely and is gone: read whatever appears at ``path`` from its beginning".
    """

    path: str
    dev: int
    inode: int
    offset: int
    fingerprint: str
    mtime_ns: int = 0


@dataclass(frozen=True, slots=True)
class Gap:
    """Lines lost before they could be read (the ``log-gap`` finding).

    ``lost_bytes`` is None when unknown; otherwise a lower bound. ``since``/``until`` bound the time
    the lost lines were written, from file modification times, when known.
    """

    source: str
    path: str
    dev: int
    inode: int
    lost_bytes: int | None
    since: datetime | None
    until: datetime | None
    reason: str


@dataclass(frozen=True, slots=True)
class EnvState:
    """What the configured token source held from ``at`` on: a fingerprint (None: no token), never a token.

    ``at`` is when the source got this content (the file's modification time), None when unknowable
    (an environment variable, or ``scan --env-file``: today's file, whose history is unknown).
    """

    at: datetime | None
    fingerprint: str | None
    source: str


class ProbeOutcome(StrEnum):
    """What Snap's answer says about the token (``failed``: nothing, there was no usable answer)."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe: outcome, HTTP status (None without an answer), a token-free detail, when, how long."""

    outcome: ProbeOutcome
    status: int | None
    detail: str
    at: datetime
    elapsed: float
