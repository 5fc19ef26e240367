"""Evidence told as a story: runs of Snap's answers to tokens, what the token source held, the probe.

``Story.evidence()`` builds what the daemon hands the diagnosis: the real detector finds the incident, the
history is the one as the incident opened, the incident is its last snapshot, and a resolved one carries
how it recovered (as ``SourcePipeline`` records it). Times are minutes after ``T0``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt

from snapwatch.config import ErrorRateRule, RulesConfig, StreakRule, TokenConfig
from snapwatch.detect.detector import Detector
from snapwatch.detect.history import History
from snapwatch.detect.pipeline import Recovery
from snapwatch.diagnose.case import Evidence
from snapwatch.ingest.tokens import TokenReport, fingerprint, inspect
from snapwatch.model import (
    Api,
    EnvState,
    Exchange,
    Incident,
    Placement,
    ProbeOutcome,
    ProbeResult,
    Request,
    Response,
    Rule,
    TransitionKind,
)
from tests.helpers.tokens import make_canvas_token

T0 = datetime(2025, 12, 3, 23, 0, 0, tzinfo=UTC)
PIXEL = "5bf81ee1-15b1-4dc1-b636-d7dae49b950e"
PIXEL2 = "9d2a1c44-7e1f-4a3b-8c55-0f6e2d1b3a77"
ENV_FILE = Path("/srv/app/.env")
SOURCE = f"SNAP_ACCESS_TOKEN in {ENV_FILE}"
STREAK = 5

LONG_AGO = int((T0 - timedelta(days=90)).timestamp())
A = make_canvas_token(nbf=LONG_AGO, seed="story-a")
B = make_canvas_token(nbf=LONG_AGO, seed="story-b")
ODD = A[:-1]  # its signature one character short: it looks cut off
STAGING = make_canvas_token(nbf=LONG_AGO, env="STAGING", seed="story-s")
FRESH = make_canvas_token(nbf=int((T0 + timedelta(minutes=5)).timestamp()), seed="story-f")


def oauth(exp_minute: float) -> str:
    """A short-lived OAuth-style JWT (not Snap's Canvas format) that expires ``exp_minute`` after T0."""
    claims = {"sub": "oauth-user", "exp": int((T0 + timedelta(minutes=exp_minute)).timestamp())}
    return jwt.encode(claims, "story-signing-key-not-a-secret-0123456789", algorithm="HS256")


def minute(m: float) -> datetime:
    return T0 + timedelta(minutes=m)


@dataclass(frozen=True)
class Run:
    """``n`` answers ``status`` to requests carrying ``token`` (its raw value as sent; None: none shown),
    one every ``every`` seconds from ``at`` minutes after T0."""

    at: float
    status: int
    n: int
    token: str | None = A
    pixel: str | None = PIXEL
    api: Api = Api.V3
    placement: Placement | None = None  # default: the query (v3 with a token), none (v3), unknown (v2)
    every: int = 30

    def requests(self) -> list[Request]:
        api, token = self.api, self.token
        placement = self.placement or (Placement.UNKNOWN if api is Api.V2 else
                                       Placement.QUERY if token is not None else Placement.NONE)
        path = f"/v3/{self.pixel}/events" if api is Api.V3 else "/v2/conversion"
        pixel = self.pixel if api is Api.V3 else None
        fp = fingerprint(token) if token is not None else None
        kind = inspect(token).kind if token is not None else None
        return [Request(minute(self.at) + timedelta(seconds=i * self.every), "PURCHASE", api, path, pixel,
                        placement, fp, kind) for i in range(self.n)]


@dataclass
class Story:
    """What happened, and what is known beside the log. ``env`` is the token source's raw value now;
    ``env_history`` what it held from which minute on (``None`` minute: today's file, its past unknown);
    ``rule`` None diagnoses the present at the last record (or at ``now`` minutes)."""

    runs: list[Run]
    env: str | None = A
    env_history: list[tuple[float | None, str | None]] = field(default_factory=list)
    rule: Rule | None = Rule.AUTH_FAILURES
    probe: ProbeOutcome | None = None
    service: str | None = "shop-backend.service"
    restart_pending: bool | None = None
    now: float | None = None

    def exchanges(self) -> list[Exchange]:
        out = []
        for run in self.runs:
            out += [Exchange(Response(r.at, r.event, run.status, _body(run.status)), r) for r in run.requests()]
        return sorted(out, key=lambda e: e.at)

    def evidence(self) -> Evidence:
        exchanges = self.exchanges()
        rules = RulesConfig(auth_failures=StreakRule(streak=STREAK, recovery=3),
                            rate_limited=StreakRule(streak=STREAK, recovery=3), error_rate=ErrorRateRule(enabled=False))
        detector, history = Detector(rules, "backend.log"), History()
        opened_view: History | None = None
        incident: Incident | None = None
        recovery: Recovery | None = None
        for ex in exchanges:
            history.observe(ex)
            for t in detector.observe(ex):
                if t.incident.rule is not self.rule or (incident is not None and incident.id != t.incident.id):
                    continue
                incident = t.incident
                if t.kind is TransitionKind.OPENED:
                    opened_view = history.copy()
                elif t.kind is TransitionKind.RESOLVED:
                    recovery = Recovery(detector.recovering_since or ex.at, ex.request)
        if incident is not None and incident.open:
            incident = next(i for i in detector.open_incidents() if i.id == incident.id)
        assert (incident is None) == (self.rule is None), "the story's incident did not happen as told"
        now = minute(self.now) if self.now is not None else (
            incident.resolved_at or incident.last_at if incident is not None else exchanges[-1].at)
        seen: dict[str, TokenReport] = {}
        for run in self.runs:
            if run.token is not None:
                seen.setdefault(fingerprint(run.token), inspect(run.token))
        probe = None
        if self.probe is not None:
            status = {ProbeOutcome.ACCEPTED: 200, ProbeOutcome.REJECTED: 401}.get(self.probe)
            probe = ProbeResult(self.probe, status, "VALID" if status == 200 else "no answer", now, 0.2)
        states = tuple(EnvState(minute(m) if m is not None else None, fingerprint(raw) if raw else None, SOURCE)
                       for m, raw in self.env_history)
        return Evidence(
            now=now,
            incident=incident,
            history=opened_view if opened_view is not None else history,
            configured=inspect(self.env) if self.env else None,
            configured_source=SOURCE,
            configured_pixel=PIXEL,
            seen=seen,
            config=TokenConfig(env_file=ENV_FILE, service=self.service),
            restart_pending=self.restart_pending,
            probe=probe,
            tokens_in_log=bool(seen) and incident is None,
            log_paths=("/var/log/app/snap_conversions_api.log",),
            env_history=states,
            latest=history.last_request,
            recovery=recovery,
        )

    def secrets(self) -> list[str]:
        return [t for t in {self.env, *(r.token for r in self.runs), *(raw for _, raw in self.env_history)} if t]


def _body(status: int) -> str:
    if 200 <= status < 300:
        return '{"status": "VALID", "reason": "Events have been processed successfully."}'
    if status == 429:
        return '{"status": "FAILED", "reason": "Too many requests"}'
    return '{"status": "UNKNOWN", "text": "Invalid access token"}'
