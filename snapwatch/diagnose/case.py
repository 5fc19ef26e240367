"""The case under diagnosis: the evidence, the facts derived from it once, and the scored candidate findings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from snapwatch.config.models import TokenConfig
from snapwatch.detect.history import AcceptedRun, History, Usage
from snapwatch.detect.pipeline import Recovery
from snapwatch.diagnose import facts as knowledge
from snapwatch.ingest.tokens import TokenReport
from snapwatch.model import Confidence, EnvState, FindingCode, Incident, Request, Rule, Severity

if TYPE_CHECKING:
    from snapwatch.model import ProbeResult

SEVERITY_WEIGHT = {Severity.CRITICAL: 3.0, Severity.WARNING: 2.0, Severity.INFO: 1.0}
CONFIDENCE_WEIGHT = {Confidence.HIGH: 3.0, Confidence.MEDIUM: 2.0, Confidence.LOW: 1.0}
# Directness: the evidence coincides with the streak's start (1.0), is present but not tied to the start
# (0.5), or is background hygiene (0.2).
DIRECT, PRESENT, BACKGROUND = 1.0, 0.5, 0.2


@dataclass(frozen=True, slots=True)
class Evidence:
    """Everything the diagnosis may use. Fingerprints and descriptions only: never a token.

    ``incident`` None diagnoses the present (the last request in ``history`` stands for the failing
    one). ``seen`` maps fingerprints of tokens seen in requests to their reports, where the caller
    could inspect them. The probe, when given, tested the configured token for the configured pixel.
    ``now`` is the judging time (scan: the records' time; diagnose: the wall clock or ``--now``).

    Time of judgement: ``history`` is Snap's answers as known when the incident opened (its questions
    are all asked "before the first failure"); ``configured`` is the token source's content now, and
    ``env_history`` what it held over time (oldest first; empty: ``configured`` is taken to have held
    throughout). ``latest`` is the last request logged now (what the backend sends while the incident is
    open); ``recovery`` is how a resolved incident ended, and makes this its final judgement.
    """

    now: datetime
    incident: Incident | None = None
    first_request: Request | None = None  # defaults to incident.first_failure.request
    history: History | None = None
    configured: TokenReport | None = None
    configured_source: str | None = None  # e.g. "SNAP_ACCESS_TOKEN in /srv/app/.env"
    configured_pixel: str | None = None
    seen: Mapping[str, TokenReport] = field(default_factory=dict)
    config: TokenConfig = field(default_factory=TokenConfig)
    restart_pending: bool | None = None
    probe: ProbeResult | None = None
    tokens_in_log: bool = False
    log_gaps: tuple[str, ...] = ()  # one description per lost stretch
    invalid_reasons: Mapping[str, int] = field(default_factory=dict)  # 400/INVALID reason → count
    log_paths: tuple[str, ...] = ()
    env_history: tuple[EnvState, ...] = ()
    latest: Request | None = None
    recovery: Recovery | None = None


@dataclass(slots=True)
class Candidate:
    """A finding before it is written out: its code, how sure, how direct, evidence lines, text values.

    ``subject`` is the fingerprint of the token a finding about a token's shape, claims or age is about,
    and ``origin`` whose token that is ("sent": the failing requests', "configured": the token source's).
    The condition such a finding names held from ``since`` until ``until`` (None: always), so that an
    acceptance by Snap within that span refutes it. ``note`` is set when stronger evidence outranks the
    finding (the "but …" of an info note); ``capped`` when no incident is open (critical → warning).
    """

    code: FindingCode
    confidence: Confidence
    directness: float
    evidence: list[str]
    values: dict[str, str] = field(default_factory=dict)
    subject: str | None = None
    origin: str = "sent"
    since: datetime | None = None
    until: datetime | None = None
    note: str | None = None
    demoted: bool = False  # an info note without a "but": evidence or hygiene, never a cause here
    capped: bool = False

    @property
    def severity(self) -> Severity:
        if self.note is not None or self.demoted:
            return Severity.INFO
        base = knowledge.FINDINGS[self.code].severity
        return Severity.WARNING if self.capped and base is Severity.CRITICAL else base

    @property
    def score(self) -> float:
        return SEVERITY_WEIGHT[self.severity] * CONFIDENCE_WEIGHT[self.confidence] * self.directness


def iso(at: datetime) -> str:
    """ISO 8601 with an offset, to the second."""
    return at.isoformat(timespec="seconds")


class Case:
    """The facts derived once from the evidence, and the findings collected from them."""

    def __init__(self, ev: Evidence) -> None:
        self.ev = ev
        inc = ev.incident
        req = ev.first_request
        if req is None and inc is not None and inc.first_failure is not None:
            req = inc.first_failure.request
        if req is None and inc is None and ev.history is not None:
            req = ev.history.last_request
        self.req = req
        self.t0 = inc.opened_at if inc is not None else ev.now
        statuses = {s: n for s, n in inc.by_status} if inc is not None else {}
        self.statuses = statuses
        if inc is None:
            # The present: judge the auth side only when the last answer was an auth failure.
            self.auth = ev.history is None or ev.history.last_status in (401, 403)
        else:
            self.auth = inc.rule is Rule.AUTH_FAILURES or bool({"401", "403"} & set(statuses))
        self.sent_fp = req.token_fp if req is not None else None
        self.pixel = (req.pixel if req is not None else None) or ev.configured_pixel
        self.before: AcceptedRun | None = None
        if inc is not None and ev.history is not None:
            self.before = ev.history.last_accepted(self.t0)
        self.found: dict[FindingCode, Candidate] = {}
        self.ruled_out: list[str] = []
        self.values = self._values()

    def _values(self) -> dict[str, str]:
        ev, cfg = self.ev, self.ev.config
        unit = cfg.service
        env_file = str(cfg.env_file) if cfg.env_file is not None else "the backend's .env file"
        pixel = self.pixel or "(your pixel id)"
        req = self.req
        return {
            "bm_path": knowledge.BUSINESS_MANAGER_PATH,
            "bm_generate": knowledge.GENERATE_PATH,
            "configured_fp": ev.configured.fingerprint if ev.configured is not None else "(none)",
            "env_file": env_file,
            "key": cfg.key,
            "pixel": pixel,
            "pixel_key": cfg.pixel_key,
            "previous_pixel": "(unknown)",
            "query_param": knowledge.TOKEN_QUERY_PARAMETER,
            "restart": f"sudo systemctl restart {unit}" if unit else "restart the backend process",
            "send_fp": self.sent_fp or "(none)",
            "source": ev.configured_source or f"{cfg.key} in {env_file}",
            "unit_status": f"systemctl status {unit}; journalctl -u {unit} --since -1h" if unit
            else "check the backend process and its output",
            "v3_url": f"{knowledge.SEND_HOST}/v3/{pixel}/events?{knowledge.TOKEN_QUERY_PARAMETER}=<token>",
            "previous_endpoint": "(unknown)",
            "endpoint": req.api.value if req is not None else "(unknown)",
            "max_rps": str(knowledge.MAX_REQUESTS_PER_SECOND),
            "max_batch": str(knowledge.MAX_EVENTS_PER_BATCH),
            "max_age_days": str(knowledge.MAX_EVENT_AGE_DAYS),
            "logs": ", ".join(ev.log_paths) or (ev.incident.source if ev.incident and ev.incident.source
                                                else "the backend's CAPI log"),
        }

    def add(self, code: FindingCode, confidence: Confidence, directness: float, *evidence: str,
            **values: str) -> Candidate:
        """Record a finding; a second one with the same code merges into the stronger of the two."""
        new = Candidate(code, confidence, directness, list(evidence), dict(values))
        old = self.found.get(code)
        if old is None:
            self.found[code] = new
            return new
        keep, other = (new, old) if new.score > old.score else (old, new)
        keep.evidence += [e for e in other.evidence if e not in keep.evidence]
        self.found[code] = keep
        return keep

    def configured_at(self, at: datetime) -> EnvState | None:
        """What the token source held at ``at``, as observed: the last state known from ``at`` or before
        (or the first one known, when observation began later; its ``at`` then says so).

        A state of unknown start (``at`` None: today's file, as ``scan --env-file`` reads it) speaks for an
        incident still open, or for one whose failing requests carried the very token it holds: for a past
        incident whose requests carried another token, what the source held then is unknown (None).
        """
        history = self.ev.env_history
        if not history:
            conf = self.ev.configured
            return None if conf is None else EnvState(None, conf.fingerprint, self.values["source"])
        held = [s for s in history if s.at is None or s.at <= at]
        state = held[-1] if held else history[0]
        inc = self.ev.incident
        if state.at is None and inc is not None and inc.resolved_at is not None and state.fingerprint != self.sent_fp:
            return None
        return state

    def configured_then(self) -> str | None:
        """The configured token's fingerprint when the failures began (None: no token, or unknown)."""
        state = self.configured_at(self.req.at if self.req is not None else self.t0)
        return state.fingerprint if state is not None else None

    def accepted(self, fp: str, since: datetime | None = None, until: datetime | None = None) -> Usage | None:
        """Snap's 2xx for token ``fp`` (any pixel) before the failures, within [since, until) as far as first
        and last acceptance tell; the usage for this pixel first. None when there is none."""
        history = self.ev.history
        if history is None:
            return None
        hits = [u for u in history.pixels_accepting(fp, self.t0)
                if (since is None or (u.last_accepted is not None and u.last_accepted >= since))
                and (until is None or (u.first_accepted is not None and u.first_accepted < until))]
        hits.sort(key=lambda u: u.pixel != self.pixel)
        return hits[0] if hits else None

    def rule_out(self, line: str) -> None:
        """Record what the evidence excludes (once)."""
        if line not in self.ruled_out:
            self.ruled_out.append(line)

    def subjects(self) -> list[tuple[str, TokenReport, float, str]]:
        """The reports to judge, with a label, directness and origin: the token in the failing requests,
        then the configured one (while it is the one the source held when the failures began)."""
        ev, out = self.ev, []
        sent = ev.seen.get(self.sent_fp) if self.sent_fp else None
        if sent is not None:
            out.append((f"token {sent.fingerprint} in the requests", sent, DIRECT, "sent"))
        conf = ev.configured
        if conf is not None and (ev.incident is None or self.configured_then() == conf.fingerprint):
            direct = DIRECT if self.sent_fp in (None, conf.fingerprint) else PRESENT * 0.8
            label = f"token {conf.fingerprint} ({self.values['source']})"
            out.append((label, conf, direct, "configured"))
        return out


def fps_in(history: History | None) -> list[str]:
    """Fingerprints of every token the history saw in requests, sorted."""
    if history is None:
        return []
    return sorted({u.token_fp for u in history.usages() if u.token_fp is not None})
