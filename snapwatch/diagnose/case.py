"""The case under diagnosis: the evidence, the facts derived from it once, and the scored candidate findings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from snapwatch.config import TokenConfig
from snapwatch.detect.history import AcceptedRun, History
from snapwatch.diagnose import facts as knowledge
from snapwatch.ingest.tokens import TokenReport
from snapwatch.model import Confidence, FindingCode, Incident, Request, Rule, Severity

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


@dataclass(slots=True)
class Candidate:
    """A finding before it is written out: its code, how sure, how direct, evidence lines, text values."""

    code: FindingCode
    confidence: Confidence
    directness: float
    evidence: list[str]
    values: dict[str, str] = field(default_factory=dict)

    @property
    def severity(self) -> Severity:
        return knowledge.FINDINGS[self.code].severity

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
            **values: str) -> None:
        """Record a finding; a second one with the same code merges into the stronger of the two."""
        new = Candidate(code, confidence, directness, list(evidence), dict(values))
        old = self.found.get(code)
        if old is None:
            self.found[code] = new
            return
        keep, other = (new, old) if new.score > old.score else (old, new)
        keep.evidence += [e for e in other.evidence if e not in keep.evidence]
        self.found[code] = keep

    def rule_out(self, line: str) -> None:
        """Record what the evidence excludes (once)."""
        if line not in self.ruled_out:
            self.ruled_out.append(line)

    def subjects(self) -> list[tuple[str, TokenReport, float]]:
        """The reports to judge: the token in the failing requests, then the configured one."""
        ev, out = self.ev, []
        sent = ev.seen.get(self.sent_fp) if self.sent_fp else None
        if sent is not None:
            out.append((f"token {sent.fingerprint} in the requests", sent, DIRECT))
        conf = ev.configured
        if conf is not None:
            direct = DIRECT if self.sent_fp in (None, conf.fingerprint) else PRESENT * 0.8
            label = f"token {conf.fingerprint} ({self.values['source']})"
            out.append((label, conf, direct))
        return out


def fps_in(history: History | None) -> list[str]:
    """Fingerprints of every token the history saw in requests, sorted."""
    if history is None:
        return []
    return sorted({u.token_fp for u in history.usages() if u.token_fp is not None})
