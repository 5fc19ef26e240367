"""The diagnosis: evidence about an incident (or the present) → findings ranked most likely first.

Pure: time comes in as ``case.Evidence.now`` and the failing requests' own timestamps. Each finding is
scored ``severity × confidence × directness`` (how directly its evidence coincides with the streak's
start); ties go by ``PRIORITY``. The Snap facts and remediation texts come from ``knowledge``;
the rules about traffic and the log rather than the token live in ``traffic``.
A Canvas S2S token's claims are never on their own evidence of a wrong token type.
"""

from __future__ import annotations

from snapwatch.codec import duration
from snapwatch.diagnose import facts as knowledge
from snapwatch.diagnose.case import DIRECT, PRESENT, Candidate, Case, Evidence, fps_in, iso
from snapwatch.diagnose.traffic import hygiene, incident_kinds
from snapwatch.ingest.tokens import DEFECT_FINDINGS
from snapwatch.model import Api, Confidence, Diagnosis, Finding, FindingCode, Placement, TokenKind

F = FindingCode

# Tie-break among equal scores: the more specific, more actionable cause first.
PRIORITY: tuple[FindingCode, ...] = (
    F.TOKEN_MISSING, F.TOKEN_DRIFT, F.AUTH_PLACEMENT, F.TOKEN_QUOTED, F.TOKEN_WHITESPACE,
    F.TOKEN_BEARER_PREFIX, F.TOKEN_MALFORMED, F.TOKEN_EXPIRED, F.TOKEN_NOT_YET_VALID, F.TOKEN_STAGING,
    F.PIXEL_CHANGED, F.TOKEN_CHANGED, F.ENDPOINT_CHANGED, F.TOKEN_REJECTED_FOR_PIXEL, F.PROBE_REJECTED,
    F.TOKEN_PREVIOUSLY_ACCEPTED, F.TOKEN_NOT_CANVAS, F.TOKEN_RECENTLY_ISSUED, F.RATE_LIMITED,
    F.SERVER_ERRORS, F.INVALID_EVENTS, F.LOG_SILENT, F.PROBE_ACCEPTED, F.V2_DEPRECATED, F.LOG_GAP,
    F.PROBE_FAILED, F.TOKEN_IN_LOG, F.TOKEN_UNLOGGED, F.REQUESTS_UNANSWERED, F.LOG_INTERLEAVED,
)
# Causes that a token Snap accepts right now cannot be (defects still reach the backend's requests).
TOKEN_CAUSES = frozenset({
    F.TOKEN_EXPIRED, F.TOKEN_NOT_YET_VALID, F.TOKEN_STAGING, F.TOKEN_NOT_CANVAS, F.TOKEN_RECENTLY_ISSUED,
    F.TOKEN_PREVIOUSLY_ACCEPTED, F.TOKEN_REJECTED_FOR_PIXEL, F.TOKEN_MALFORMED,
})


def _token_checks(c: Case) -> None:
    ev, req = c.ev, c.req
    nothing = ev.configured is None and c.sent_fp is None and not ev.seen and not fps_in(ev.history)
    if req is not None and req.api is Api.V2 and req.placement is Placement.UNKNOWN and c.sent_fp is None:
        # v2 sends the token in a header backends do not log: not seeing it is normal, not a missing token
        known = (f"what is known of it comes from {c.values['source']}" if ev.configured is not None
                 else "and no token is configured for snapwatch to check")
        c.add(F.TOKEN_UNLOGGED, Confidence.HIGH, PRESENT,
              f"{iso(req.at)}: the v2 request to {req.path or '/v2/conversion'} sends its token in an "
              f"Authorization header the backend does not log; {known}")
    elif nothing and (c.auth or ev.incident is None):
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
            c.rule_out(f"expiry: token {rep.fingerprint} has no exp claim "
                       "(a Canvas S2S token does not expire by its claims)")
        if rep.nbf is not None and rep.nbf > c.t0:
            c.add(F.TOKEN_NOT_YET_VALID, Confidence.HIGH, direct,
                  f"{label}: nbf {iso(rep.nbf)} is after {iso(c.t0)}")
        elif rep.nbf is not None and c.t0 - rep.nbf <= window:
            changed = c.before is not None and c.before.attrs.token_fp not in (None, rep.fingerprint)
            c.add(F.TOKEN_RECENTLY_ISSUED, Confidence.MEDIUM if changed else Confidence.LOW, direct,
                  f"{label}: issued (nbf) {iso(rep.nbf)}, {duration(c.t0 - rep.nbf)} before the failures "
                  f"at {iso(c.t0)}")


def _drift(c: Case) -> None:
    conf, fp = c.ev.configured, c.sent_fp
    if conf is None or fp is None or c.req is None:
        return
    if conf.fingerprint == fp:
        c.rule_out(f"token drift: the requests carry the configured token {fp} ({c.values['source']})")
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


def _placement(c: Case) -> None:
    req = c.req
    if req is None or not c.auth:
        return
    wanted = knowledge.ENDPOINTS.get(req.api)
    wrong = (req.api is Api.V3 and req.placement is not Placement.QUERY and req.placement is not Placement.UNKNOWN) \
        or (req.api is Api.V2 and req.placement is Placement.NONE)
    if not wrong or wanted is None:
        if req.api is Api.V3 and req.placement is Placement.QUERY:
            c.rule_out("auth placement: the failing request carries the token in the access_token query parameter")
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


def _changes(c: Case) -> None:
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
            c.rule_out(f"token change: {since} carried the same token {req.token_fp}")
    if prev.pixel is not None and req.pixel is not None:
        if prev.pixel != req.pixel:
            c.add(F.PIXEL_CHANGED, Confidence.HIGH, DIRECT,
                  f"{since} went to pixel {prev.pixel}; the first failing request ({iso(req.at)}) goes to "
                  f"{req.pixel}", previous_pixel=prev.pixel)
        else:
            c.rule_out(f"pixel change: {since} went to the same pixel {req.pixel}")
    old_path = prev.path.replace(prev.pixel, "{pixel}") if prev.pixel else prev.path
    new_path = req.path.replace(req.pixel, "{pixel}") if req.pixel else req.path
    if prev.api is not req.api or old_path != new_path:
        c.add(F.ENDPOINT_CHANGED, Confidence.HIGH if prev.api is not req.api else Confidence.MEDIUM, DIRECT,
              f"{since} went to {prev.api} {prev.path or '(no URL)'}; the first failing request "
              f"({iso(req.at)}) goes to {req.api} {req.path or '(no URL)'}",
              previous_endpoint=f"{prev.api} {old_path}", endpoint=f"{req.api} {new_path}")
    else:
        c.rule_out(f"endpoint change: {since} used the same endpoint {req.api} {new_path}")


def _acceptance(c: Case) -> None:
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
        c.rule_out(f"token type: token {fp} got {u.accepted} 2xx for pixel {u.pixel or '(not logged)'} "
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
        c.rule_out(f"Canvas-vs-CAPI mismatch: Snap's validate endpoint accepted token {fp} for pixel "
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


def _probe(c: Case) -> None:
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
        c.rule_out(f"the token itself: Snap's validate endpoint accepted token {fp} at {iso(probe.at)}")
        for code in TOKEN_CAUSES & c.found.keys():
            if c.sent_fp in (None, fp):
                c.found[code].directness *= 0.25
                c.found[code].confidence = Confidence.LOW
    elif probe.outcome == "rejected":
        c.add(F.PROBE_REJECTED, Confidence.HIGH, DIRECT, line)
    else:
        c.add(F.PROBE_FAILED, Confidence.LOW, DIRECT, line + "; this says nothing about the token")


def _finding(c: Case, cand: Candidate) -> Finding:
    values = {**c.values, **cand.values}
    return Finding(
        code=cand.code,
        severity=cand.severity,
        confidence=cand.confidence,
        title=knowledge.title(cand.code, values),
        evidence=tuple(cand.evidence),
        remediation=knowledge.remediation(cand.code, values),
    )


def rank(candidates: list[Candidate]) -> list[Candidate]:
    """Highest score first; equal scores by ``PRIORITY``."""
    return sorted(candidates, key=lambda k: (-k.score, PRIORITY.index(k.code)))


def diagnose(ev: Evidence) -> Diagnosis:
    """Ranked findings for the evidence; ``ruled_out`` says what the evidence excludes."""
    c = Case(ev)
    for step in (_drift, _placement, _changes, _token_checks, _acceptance, _probe, incident_kinds, hygiene):
        step(c)
    ranked = rank(list(c.found.values()))
    return Diagnosis(findings=tuple(_finding(c, k) for k in ranked), ruled_out=tuple(c.ruled_out))
