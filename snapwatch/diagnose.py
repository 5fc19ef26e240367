"""The diagnosis: evidence about an incident (or the present) → findings ranked most likely first.

Pure: time comes in as ``Evidence.now`` and the failing requests' own timestamps. Each finding is
scored ``severity × confidence × directness`` (how directly its evidence coincides with the streak's
start); ties go by ``PRIORITY``. The Snap facts and remediation texts come from ``knowledge``.
A Canvas S2S token's claims are never on their own evidence of a wrong token type.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from snapwatch import knowledge
from snapwatch.config import TokenConfig
from snapwatch.history import AcceptedRun, History
from snapwatch.model import (
    Api,
    Confidence,
    Diagnosis,
    Finding,
    FindingCode,
    Incident,
    Placement,
    Request,
    Rule,
    Severity,
    TokenKind,
)
from snapwatch.records import body_fields
from snapwatch.tokens import DEFECT_FINDINGS, TokenReport

if TYPE_CHECKING:
    from snapwatch.probe import ProbeResult

F = FindingCode

SEVERITY_WEIGHT = {Severity.CRITICAL: 3.0, Severity.WARNING: 2.0, Severity.INFO: 1.0}
CONFIDENCE_WEIGHT = {Confidence.HIGH: 3.0, Confidence.MEDIUM: 2.0, Confidence.LOW: 1.0}
# Directness: the evidence coincides with the streak's start (1.0), is present but not tied to the start
# (0.5), or is background hygiene (0.2).
DIRECT, PRESENT, BACKGROUND = 1.0, 0.5, 0.2
# Tie-break among equal scores: the more specific, more actionable cause first.
PRIORITY: tuple[FindingCode, ...] = (
    F.TOKEN_MISSING, F.TOKEN_DRIFT, F.AUTH_PLACEMENT, F.TOKEN_QUOTED, F.TOKEN_WHITESPACE,
    F.TOKEN_BEARER_PREFIX, F.TOKEN_MALFORMED, F.TOKEN_EXPIRED, F.TOKEN_NOT_YET_VALID, F.TOKEN_STAGING,
    F.PIXEL_CHANGED, F.TOKEN_CHANGED, F.ENDPOINT_CHANGED, F.TOKEN_REJECTED_FOR_PIXEL, F.PROBE_REJECTED,
    F.TOKEN_PREVIOUSLY_ACCEPTED, F.TOKEN_NOT_CANVAS, F.TOKEN_RECENTLY_ISSUED, F.RATE_LIMITED,
    F.SERVER_ERRORS, F.INVALID_EVENTS, F.LOG_SILENT, F.PROBE_ACCEPTED, F.V2_DEPRECATED, F.LOG_GAP,
    F.PROBE_FAILED, F.TOKEN_IN_LOG,
)
# Causes that a token Snap accepts right now cannot be (defects still reach the backend's requests).
TOKEN_CAUSES = frozenset({
    F.TOKEN_EXPIRED, F.TOKEN_NOT_YET_VALID, F.TOKEN_STAGING, F.TOKEN_NOT_CANVAS, F.TOKEN_RECENTLY_ISSUED,
    F.TOKEN_PREVIOUSLY_ACCEPTED, F.TOKEN_REJECTED_FOR_PIXEL, F.TOKEN_MALFORMED,
})


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
class _Candidate:
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


class _Case:
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
        self.found: dict[FindingCode, _Candidate] = {}
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
        new = _Candidate(code, confidence, directness, list(evidence), dict(values))
        old = self.found.get(code)
        if old is None:
            self.found[code] = new
            return
        keep, other = (new, old) if new.score > old.score else (old, new)
        keep.evidence += [e for e in other.evidence if e not in keep.evidence]
        self.found[code] = keep

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


def _token_checks(c: _Case) -> None:
    ev = c.ev
    nothing = ev.configured is None and c.sent_fp is None and not ev.seen and not _fps_in(ev.history)
    if nothing and (c.auth or ev.incident is None):
        c.add(F.TOKEN_MISSING, Confidence.HIGH, DIRECT,
              f"no token in {c.values['source']}, and no request in the log carries one")
    window = ev.config.activation_window
    for label, rep, direct in c.subjects():
        for defect in rep.defects:
            c.add(DEFECT_FINDINGS[defect], Confidence.HIGH, direct, f"{label}: the raw value is {defect.value}")
        if rep.kind is TokenKind.MALFORMED:
            c.add(F.TOKEN_MALFORMED, Confidence.HIGH, direct,
                  f"{label}: {knowledge.TOKEN_KINDS[rep.kind]} (length {rep.length})")
        if rep.kind is TokenKind.CANVAS_S2S_STAGING:
            c.add(F.TOKEN_STAGING, Confidence.HIGH, direct, f"{label}: sub carries ~STAGING~")
        if rep.kind in (TokenKind.JWT_OTHER, TokenKind.OPAQUE):
            c.add(F.TOKEN_NOT_CANVAS, Confidence.HIGH if rep.exp else Confidence.MEDIUM, direct * 0.8,
                  f"{label}: {knowledge.TOKEN_KINDS[rep.kind]}")
        if rep.exp is not None and rep.exp <= c.t0:
            c.add(F.TOKEN_EXPIRED, Confidence.HIGH, direct,
                  f"{label}: exp {iso(rep.exp)} passed before {iso(c.t0)}")
        elif rep.exp is not None and rep.exp <= ev.now:
            c.add(F.TOKEN_EXPIRED, Confidence.MEDIUM, direct * PRESENT,
                  f"{label}: exp {iso(rep.exp)} passed after the failures began ({iso(c.t0)})")
        elif rep.exp is None and rep.kind is TokenKind.CANVAS_S2S:
            _rule_out(c, f"expiry: token {rep.fingerprint} has no exp claim "
                         "(a Canvas S2S token does not expire by its claims)")
        if rep.nbf is not None and rep.nbf > c.t0:
            c.add(F.TOKEN_NOT_YET_VALID, Confidence.HIGH, direct,
                  f"{label}: nbf {iso(rep.nbf)} is after {iso(c.t0)}")
        elif rep.nbf is not None and c.t0 - rep.nbf <= window:
            changed = c.before is not None and c.before.attrs.token_fp not in (None, rep.fingerprint)
            c.add(F.TOKEN_RECENTLY_ISSUED, Confidence.MEDIUM if changed else Confidence.LOW, direct,
                  f"{label}: issued (nbf) {iso(rep.nbf)}, {_minutes(c.t0 - rep.nbf)} before the failures "
                  f"at {iso(c.t0)}")


def _drift(c: _Case) -> None:
    conf, fp = c.ev.configured, c.sent_fp
    if conf is None or fp is None or c.req is None:
        return
    if conf.fingerprint == fp:
        _rule_out(c, f"token drift: the requests carry the configured token {fp} ({c.values['source']})")
        return
    pending = c.ev.restart_pending
    confidence = {True: Confidence.HIGH, None: Confidence.MEDIUM, False: Confidence.LOW}[pending]
    evidence = [f"{iso(c.req.at)}: requests carry token {fp}; {c.values['source']} is {conf.fingerprint}"]
    if pending:
        evidence.append(f"{c.values['env_file']} was modified after {c.ev.config.service or 'the backend'} "
                        "started: a restart is pending")
    elif pending is False:
        evidence.append("the backend started after the .env was last modified (it may read the token elsewhere)")
    c.add(F.TOKEN_DRIFT, confidence, DIRECT, *evidence)


def _placement(c: _Case) -> None:
    req = c.req
    if req is None or not c.auth:
        return
    wanted = knowledge.ENDPOINTS.get(req.api)
    wrong = (req.api is Api.V3 and req.placement is not Placement.QUERY and req.placement is not Placement.UNKNOWN) \
        or (req.api is Api.V2 and req.placement is Placement.NONE)
    if not wrong or wanted is None:
        if req.api is Api.V3 and req.placement is Placement.QUERY:
            _rule_out(c, "auth placement: the failing request carries the token in the access_token query parameter")
        return
    where = "no token at all" if req.placement is Placement.NONE else f"the token only in the {req.placement} "
    evidence = [f"{iso(req.at)}: the failing {req.api} request to {req.path or '(no URL)'} carries "
                f"{where.strip()}; {req.api} wants {wanted.placement_text}"]
    before = c.before
    directness, confidence = DIRECT, Confidence.HIGH
    if before is not None and before.attrs.placement is not req.placement:
        evidence.append(f"the last accepted request ({iso(before.last_at)}) carried the token in the "
                        f"{before.attrs.placement}")
    elif before is not None:
        # Snap accepted requests placed the same way before, so the placement alone does not explain it.
        directness, confidence = PRESENT, Confidence.LOW
    c.add(F.AUTH_PLACEMENT, confidence, directness, *evidence)


def _changes(c: _Case) -> None:
    req, before = c.req, c.before
    if req is None or before is None or not c.auth:
        return
    prev, since = before.attrs, f"the last accepted request ({iso(before.last_at)})"
    if prev.token_fp is not None and req.token_fp is not None:
        if prev.token_fp != req.token_fp:
            c.add(F.TOKEN_CHANGED, Confidence.HIGH, DIRECT,
                  f"{since} carried token {prev.token_fp}; the first failing request ({iso(req.at)}) "
                  f"carries {req.token_fp}")
        else:
            _rule_out(c, f"token change: {since} carried the same token {req.token_fp}")
    if prev.pixel is not None and req.pixel is not None:
        if prev.pixel != req.pixel:
            c.add(F.PIXEL_CHANGED, Confidence.HIGH, DIRECT,
                  f"{since} went to pixel {prev.pixel}; the first failing request ({iso(req.at)}) goes to "
                  f"{req.pixel}", previous_pixel=prev.pixel)
        else:
            _rule_out(c, f"pixel change: {since} went to the same pixel {req.pixel}")
    old_path = prev.path.replace(prev.pixel, "{pixel}") if prev.pixel else prev.path
    new_path = req.path.replace(req.pixel, "{pixel}") if req.pixel else req.path
    if prev.api is not req.api or old_path != new_path:
        c.add(F.ENDPOINT_CHANGED, Confidence.HIGH if prev.api is not req.api else Confidence.MEDIUM, DIRECT,
              f"{since} went to {prev.api} {prev.path or '(no URL)'}; the first failing request "
              f"({iso(req.at)}) goes to {req.api} {req.path or '(no URL)'}",
              previous_endpoint=f"{prev.api} {old_path}", endpoint=f"{req.api} {new_path}")
    else:
        _rule_out(c, f"endpoint change: {since} used the same endpoint {req.api} {new_path}")


def _acceptance(c: _Case) -> None:
    ev, req, fp = c.ev, c.req, c.sent_fp
    if fp is None:
        # The failing requests do not show their token: ask about the one configured or last accepted.
        fp = ev.configured.fingerprint if ev.configured is not None else None
        fp = fp or (c.before.attrs.token_fp if c.before is not None else None)
    if ev.history is None or req is None or fp is None or not c.auth:
        return
    accepted = ev.history.pixels_accepting(fp, c.t0)
    exact = next((u for u in accepted if u.pixel == req.pixel), None)
    unnamed = next((u for u in accepted if u.pixel is None), None)
    for u in accepted:
        _rule_out(c, f"token type: token {fp} got {u.accepted} 2xx for pixel {u.pixel or '(not logged)'} "
                     f"between {iso(u.first_accepted or u.first_seen)} and {iso(u.last_accepted or u.last_seen)}")
    hit = exact or unnamed
    if hit is not None:
        where = f"pixel {hit.pixel}" if hit.pixel else "requests that do not name the pixel"
        c.add(F.TOKEN_PREVIOUSLY_ACCEPTED, Confidence.HIGH if exact else Confidence.MEDIUM, DIRECT,
              f"token {fp} got {hit.accepted} 2xx for {where} between "
              f"{iso(hit.first_accepted or hit.first_seen)} and {iso(hit.last_accepted or hit.last_seen)}")
        return
    if ev.history.pixels_accepting(None, c.t0):
        return  # accepted requests that did not show their token (v2): "never accepted" cannot be shown
    if accepted or F.PIXEL_CHANGED in c.found or F.TOKEN_DRIFT in c.found or F.AUTH_PLACEMENT in c.found:
        return
    reports = [r for r in (ev.seen.get(fp), ev.configured) if r is not None and r.fingerprint == fp]
    if not reports or any(r.defects or r.kind is not TokenKind.CANVAS_S2S for r in reports):
        return
    if req.api is Api.V3 and req.placement is not Placement.QUERY:
        return
    probe = ev.probe if ev.configured is not None and ev.configured.fingerprint == fp else None
    if probe is not None and probe.outcome == "accepted":
        _rule_out(c, f"Canvas-vs-CAPI mismatch: Snap's validate endpoint accepted token {fp} for pixel "
                     f"{c.values['pixel']} at {iso(probe.at)}")
        return
    seen = ev.history.usage(fp, req.pixel)
    evidence = [f"token {fp} is a well-formed Canvas S2S token (the format Business Manager issues for CAPI)",
                f"it got no 2xx for pixel {c.values['pixel']}"
                + (f" and {seen.rejected} 401/403 between {iso(seen.first_seen)} and {iso(seen.last_seen)}"
                   if seen else ""),
                f"the failing {req.api} request carries it where {req.api} wants it ({req.placement})"]
    rejected = probe is not None and probe.outcome == "rejected"
    if rejected and probe is not None:
        evidence.append(f"Snap's validate endpoint rejected it at {iso(probe.at)} (HTTP {probe.status})")
    c.add(F.TOKEN_REJECTED_FOR_PIXEL, Confidence.HIGH if rejected else Confidence.MEDIUM, DIRECT, *evidence)


def _probe(c: _Case) -> None:
    probe = c.ev.probe
    if probe is None:
        return
    fp = c.ev.configured.fingerprint if c.ev.configured is not None else "(configured token)"
    status = f"HTTP {probe.status}" if probe.status is not None else "no answer"
    line = f"{iso(probe.at)}: validate for token {fp}, pixel {c.values['pixel']}: {status}"
    if probe.detail:
        line += f" ({probe.detail[:160]})"
    if probe.outcome == "accepted":
        c.add(F.PROBE_ACCEPTED, Confidence.HIGH, DIRECT, line)
        _rule_out(c, f"the token itself: Snap's validate endpoint accepted token {fp} at {iso(probe.at)}")
        for code in TOKEN_CAUSES & c.found.keys():
            if c.sent_fp in (None, fp):
                c.found[code].directness *= 0.25
                c.found[code].confidence = Confidence.LOW
    elif probe.outcome == "rejected":
        c.add(F.PROBE_REJECTED, Confidence.HIGH, DIRECT, line)
    else:
        c.add(F.PROBE_FAILED, Confidence.LOW, DIRECT, line + "; this says nothing about the token")


def _incident_kinds(c: _Case) -> None:
    inc = c.ev.incident
    if inc is None:
        return
    counts = c.statuses
    span = f"between {iso(inc.opened_at)} and {iso(inc.last_at)}"
    n429 = counts.get("429", 0)
    if n429 or inc.rule is Rule.RATE_LIMITED:
        c.add(F.RATE_LIMITED, Confidence.HIGH, DIRECT if inc.rule is Rule.RATE_LIMITED else PRESENT,
              f"{n429} responses with HTTP 429 {span}")
    fivexx = {s: n for s, n in counts.items() if s.isdigit() and 500 <= int(s) < 600}
    if fivexx:
        listed = ", ".join(f"{n}× {s}" for s, n in sorted(fivexx.items()))
        c.add(F.SERVER_ERRORS, Confidence.HIGH, DIRECT if inc.rule is Rule.SERVER_ERRORS else PRESENT,
              f"{listed} {span}: Snap-side errors")
        if not c.auth:
            _rule_out(c, "the token: 5xx answers are Snap-side trouble, not an authentication failure")
    n400 = counts.get("400", 0)
    if n400 or inc.rule is Rule.INVALID_EVENTS:
        evidence = [f"{n400} responses with HTTP 400 / INVALID {span}"]
        top = sorted(c.ev.invalid_reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        evidence += [f"{n}× {reason[:200]}" for reason, n in top]
        c.add(F.INVALID_EVENTS, Confidence.HIGH, DIRECT if inc.rule is Rule.INVALID_EVENTS else PRESENT,
              *evidence)
    if inc.rule is Rule.SILENCE:
        last = c.ev.history.last_request if c.ev.history is not None else None
        since = f"the last request at {iso(last.at)}" if last is not None else f"{iso(inc.opened_at)}"
        c.add(F.LOG_SILENT, Confidence.HIGH, DIRECT, f"no request logged since {since}")


def _hygiene(c: _Case) -> None:
    ev, req = c.ev, c.req
    if req is not None and req.api is Api.V2:
        c.add(F.V2_DEPRECATED, Confidence.HIGH, PRESENT if ev.incident is not None else DIRECT,
              f"{iso(req.at)}: requests go to {req.path or '/v2/conversion'}; "
              f"{knowledge.ENDPOINTS[Api.V2].deprecated}")
    if ev.log_gaps:
        c.add(F.LOG_GAP, Confidence.HIGH, PRESENT, *ev.log_gaps)
    if ev.tokens_in_log:
        fps = sorted(ev.seen) or _fps_in(ev.history)
        c.add(F.TOKEN_IN_LOG, Confidence.HIGH, BACKGROUND,
              f"{c.values['logs']}: request URLs carry the access token in clear text "
              f"(tokens {', '.join(fps) or 'unknown'})")


def invalid_reasons(bodies: Iterable[str]) -> Counter[str]:
    """Count the reasons Snap gives in 400 / INVALID bodies (error messages first, then the reason)."""
    counted: Counter[str] = Counter()
    for body in bodies:
        fields = body_fields(body)
        reasons = fields.error_msgs or fields.record_reasons
        if not reasons:
            reasons = (fields.reason or fields.text or "(no reason given)",)
        counted.update(r.strip()[:200] for r in reasons)
    return counted


def _fps_in(history: History | None) -> list[str]:
    if history is None:
        return []
    return sorted({u.token_fp for u in history.usages() if u.token_fp is not None})


def _rule_out(c: _Case, line: str) -> None:
    if line not in c.ruled_out:
        c.ruled_out.append(line)


def _minutes(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 60} min" if seconds >= 60 else f"{seconds} s"


def _finding(c: _Case, cand: _Candidate) -> Finding:
    values = {**c.values, **cand.values}
    return Finding(
        code=cand.code,
        severity=cand.severity,
        confidence=cand.confidence,
        title=knowledge.title(cand.code, values),
        evidence=tuple(cand.evidence),
        remediation=knowledge.remediation(cand.code, values),
    )


def rank(candidates: list[_Candidate]) -> list[_Candidate]:
    """Highest score first; equal scores by ``PRIORITY``."""
    return sorted(candidates, key=lambda k: (-k.score, PRIORITY.index(k.code)))


def diagnose(ev: Evidence) -> Diagnosis:
    """Ranked findings for the evidence; ``ruled_out`` says what the evidence excludes."""
    c = _Case(ev)
    for step in (_drift, _placement, _changes, _token_checks, _acceptance, _probe, _incident_kinds, _hygiene):
        step(c)
    ranked = rank(list(c.found.values()))
    return Diagnosis(findings=tuple(_finding(c, k) for k in ranked), ruled_out=tuple(c.ruled_out))
