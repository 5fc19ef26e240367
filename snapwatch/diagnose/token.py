"""The rules about the token: its shape and claims, drift from the token source, what Snap did with it, the probe."""

from __future__ import annotations

from datetime import datetime

from snapwatch.codec import duration
from snapwatch.diagnose import facts as knowledge
from snapwatch.diagnose.case import DIRECT, PRESENT, Case, fps_in, iso
from snapwatch.ingest.tokens import DEFECT_FINDINGS
from snapwatch.model import Api, Confidence, FindingCode, Placement, Request, TokenKind

F = FindingCode


def token_checks(c: Case) -> None:
    """The shape, claims and age of the token in the failing requests and of the configured one."""
    ev = c.ev
    nothing = ev.configured is None and c.sent_fp is None and not ev.seen and not fps_in(ev.history)
    if nothing and (c.auth or ev.incident is None):
        c.add(F.TOKEN_MISSING, Confidence.HIGH, DIRECT,
              f"no token in {c.values['source']}, and no request in the log carries one")
    window = ev.config.activation_window
    for label, rep, direct, origin in c.subjects():
        def add(code: FindingCode, confidence: Confidence, directness: float, line: str,
                since: datetime | None = None, until: datetime | None = None,
                fp: str = rep.fingerprint, origin: str = origin) -> None:
            k = c.add(code, confidence, directness, line)
            if k.evidence[0] == line:  # this subject's finding is the one kept
                k.subject, k.origin, k.since, k.until = fp, origin, since, until

        for defect in rep.defects:
            add(DEFECT_FINDINGS[defect], Confidence.HIGH, direct, f"{label}: the raw value is {defect.value}")
        if rep.kind is TokenKind.MALFORMED:
            add(F.TOKEN_MALFORMED, Confidence.HIGH, direct,
                f"{label}: {knowledge.TOKEN_KINDS[rep.kind]} (length {rep.length})")
        if rep.kind is TokenKind.CANVAS_S2S_STAGING:
            add(F.TOKEN_STAGING, Confidence.HIGH, direct, f"{label}: sub carries ~STAGING~")
        if rep.kind in (TokenKind.JWT_OTHER, TokenKind.OPAQUE):
            add(F.TOKEN_NOT_CANVAS, Confidence.HIGH if rep.exp else Confidence.MEDIUM, direct * 0.8,
                f"{label}: {knowledge.TOKEN_KINDS[rep.kind]}")
        if rep.exp is not None and rep.exp <= c.t0:
            add(F.TOKEN_EXPIRED, Confidence.HIGH, direct, f"{label}: exp {iso(rep.exp)} passed before {iso(c.t0)}",
                since=rep.exp)
        elif rep.exp is not None and rep.exp <= ev.now:
            add(F.TOKEN_EXPIRED, Confidence.MEDIUM, direct * PRESENT,
                f"{label}: exp {iso(rep.exp)} passed after the failures began ({iso(c.t0)})", since=rep.exp)
        elif rep.exp is None and rep.kind is TokenKind.CANVAS_S2S:
            c.rule_out(f"expiry: token {rep.fingerprint} has no exp claim "
                       "(a Canvas S2S token does not expire by its claims)")
        if rep.nbf is not None and rep.nbf > c.t0:
            add(F.TOKEN_NOT_YET_VALID, Confidence.HIGH, direct, f"{label}: nbf {iso(rep.nbf)} is after {iso(c.t0)}",
                until=rep.nbf)
        elif rep.nbf is not None and c.t0 - rep.nbf <= window:
            changed = c.before is not None and c.before.attrs.token_fp not in (None, rep.fingerprint)
            add(F.TOKEN_RECENTLY_ISSUED, Confidence.MEDIUM if changed else Confidence.LOW, direct,
                f"{label}: issued (nbf) {iso(rep.nbf)}, {duration(c.t0 - rep.nbf)} before the failures "
                f"at {iso(c.t0)}", since=rep.nbf)


def drift(c: Case) -> None:
    """The backend sends another token than its source held: when the failures began (the cause), or now,
    with requests logged after the source changed (a restart still to do). Only requests logged after the
    source got its content count: before that, the backend could not have read it."""
    req = c.req
    if req is None or req.token_fp is None:
        return
    then = c.configured_at(req.at)
    same = then is not None and then.fingerprint == req.token_fp
    if then is not None and then.fingerprint is not None and not same and (then.at is None or then.at < req.at):
        _drift_found(c, req, then.fingerprint, then.source, then.at, start=True)
        return
    latest = c.ev.latest
    now = c.configured_at(c.ev.now)
    if (c.ev.recovery is None and latest is not None and latest.token_fp is not None and now is not None
            and now.fingerprint not in (None, latest.token_fp) and (now.at is None or now.at < latest.at)):
        _drift_found(c, latest, now.fingerprint or "", now.source, now.at, start=False)
    elif same and then is not None:
        c.rule_out(f"token drift: the requests carry the configured token {req.token_fp} ({then.source})")


def _drift_found(c: Case, req: Request, configured: str, source: str, since: datetime | None, *,
                 start: bool) -> None:
    pending = c.ev.restart_pending
    confidence = {True: Confidence.HIGH, None: Confidence.MEDIUM, False: Confidence.LOW}[pending]
    held = f" since {iso(since)}" if since is not None else ""
    verb = "carry" if start else "still carry"
    evidence = [f"{iso(req.at)}: requests {verb} token {req.token_fp}; {source} holds {configured}{held}"]
    if pending:
        evidence.append(f"{c.values['env_file']} was modified after {c.ev.config.service or 'the backend'} "
                        "started: a restart is pending")
    elif pending is False:
        evidence.append("the backend started after the .env was last modified (it may read the token elsewhere)")
    c.add(F.TOKEN_DRIFT, confidence, DIRECT, *evidence)


def acceptance(c: Case) -> None:
    """What Snap did with this very token for this pixel before the failures: accepted (then, with nothing
    changed in the requests, it was revoked), or never (the Canvas-vs-CAPI mismatch)."""
    ev, req, fp = c.ev, c.req, c.sent_fp
    if fp is None:
        # The failing requests do not show their token: ask about the one configured or last accepted.
        fp = c.configured_then() or (c.before.attrs.token_fp if c.before is not None else None)
    if ev.history is None or req is None or not c.auth:
        return
    if fp is None or (req.token_fp is None and ev.history.pixels_accepting(None, c.t0)):
        _unlogged_acceptance(c, req)
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
        _revoked(c, req, fp, Confidence.HIGH if exact and req.token_fp is not None else Confidence.MEDIUM)
        return
    if ev.history.pixels_accepting(None, c.t0):
        return  # accepted requests that did not show their token (v2): "never accepted" cannot be shown
    if accepted or F.PIXEL_CHANGED in c.found or F.TOKEN_DRIFT in c.found or F.AUTH_PLACEMENT in c.found:
        return
    _rejected_for_pixel(c, req, fp)


def _unchanged(c: Case, req: Request) -> str | None:
    """The attributes the failing request shares with the last accepted one; None when any changed."""
    before = c.before
    if before is None or any(code in c.found for code in (F.TOKEN_CHANGED, F.PIXEL_CHANGED, F.ENDPOINT_CHANGED)):
        return None
    prev = before.attrs
    if (prev.token_fp, prev.pixel, prev.api, prev.placement) != (req.token_fp, req.pixel, req.api, req.placement):
        return None
    token = f"token {req.token_fp}" if req.token_fp else "the token (not logged)"
    where = f"{req.api} {req.path or '(no URL)'}"
    return f"{token}, pixel {req.pixel or '(not logged)'}, {where}, placement {req.placement}"


def _revoked(c: Case, req: Request, fp: str | None, confidence: Confidence) -> None:
    same = _unchanged(c, req)
    before = c.before
    if same is None or before is None:
        return
    until = before.last_at if before.last_at < c.t0 else c.t0
    inc = c.ev.incident
    failed = "" if inc is None else f" ({inc.responses} in all)" if inc.resolved_at else f" ({inc.responses} so far)"
    who = f"token {fp}" if req.token_fp is not None else "the requests (token not logged)"
    c.add(F.TOKEN_REVOKED, confidence, DIRECT,
          f"{who} got 2xx for pixel {c.values['pixel']} until {iso(until)}; from {iso(req.at)} on 401/403{failed}",
          f"nothing in the requests changed: {same}").subject = fp


def _unlogged_acceptance(c: Case, req: Request) -> None:
    """v2 logs no header: requests that did not show their token were accepted, then refused."""
    history = c.ev.history
    if history is None:
        return
    accepted = history.pixels_accepting(None, c.t0)
    if not accepted:
        return
    u = accepted[0]
    c.rule_out(f"token type: requests that do not show their token got {u.accepted} 2xx between "
               f"{iso(u.first_accepted or u.first_seen)} and {iso(u.last_accepted or u.last_seen)}")
    if F.TOKEN_CHANGED not in c.found:
        _revoked(c, req, c.configured_then(), Confidence.MEDIUM)


def _rejected_for_pixel(c: Case, req: Request, fp: str) -> None:
    ev = c.ev
    if ev.history is None:
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
    c.add(F.TOKEN_REJECTED_FOR_PIXEL, Confidence.HIGH if rejected else Confidence.MEDIUM, DIRECT,
          *evidence).subject = fp


def unlogged(c: Case) -> None:
    """v2 sends the token in a header the backend does not log: say where what is known of it comes from."""
    req = c.req
    if req is None or not c.auth or req.token_fp is not None or req.api is not Api.V2 \
            or req.placement is not Placement.UNKNOWN:
        return
    then = c.configured_then()
    if then:
        known = f"what is known of the token comes from {c.values['source']}: token {then}"
    elif c.ev.configured is not None:
        known = f"what {c.values['source']} held then is unknown (it holds another token now)"
    else:
        known = "no token source is configured, so nothing is known of the token"
    c.add(F.TOKEN_UNLOGGED, Confidence.HIGH, DIRECT,
          f"{iso(req.at)}: the failing v2 request to {req.path or '/v2/conversion'} does not show its token "
          "(the Authorization header is not logged)", known)


def probe(c: Case) -> None:
    """Snap's validate endpoint's answer about the configured token (what it outranks: ``rank.PRECEDENCE``)."""
    result = c.ev.probe
    if result is None:
        return
    fp = c.ev.configured.fingerprint if c.ev.configured is not None else "(configured token)"
    status = f"HTTP {result.status}" if result.status is not None else "no answer"
    line = f"{iso(result.at)}: validate for token {fp}, pixel {c.values['pixel']}: {status}"
    if result.detail:
        line += f" ({result.detail[:160]})"
    if result.outcome == "accepted":
        c.add(F.PROBE_ACCEPTED, Confidence.HIGH, DIRECT, line)
        c.rule_out(f"the token itself: Snap's validate endpoint accepted token {fp} at {iso(result.at)}")
    elif result.outcome == "rejected":
        c.add(F.PROBE_REJECTED, Confidence.HIGH, DIRECT, line)
    else:
        c.add(F.PROBE_FAILED, Confidence.LOW, DIRECT, line + "; this says nothing about the token")
