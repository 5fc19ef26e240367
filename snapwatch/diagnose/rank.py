"""The ranking: what outranks what (``PRECEDENCE``), the request rules, the recovery, and ``diagnose``.

Pure: time comes in as ``case.Evidence.now`` and the failing requests' own timestamps. Each finding is
scored ``severity × confidence × directness`` (how directly its evidence coincides with the streak's
start); causes (critical, warning) rank before notes (info), and ties go by ``PRIORITY``. Before that,
``PRECEDENCE`` lets evidence of behaviour outrank static appearance, row by row. The Snap facts and
remediation texts come from ``knowledge``; the token's rules live in ``token``, traffic's in ``traffic``.
A Canvas S2S token's claims are never on their own evidence of a wrong token type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from snapwatch.diagnose import facts as knowledge
from snapwatch.diagnose.case import DIRECT, Candidate, Case, Evidence, iso
from snapwatch.diagnose.token import acceptance, drift, probe, token_checks, unlogged
from snapwatch.diagnose.traffic import hygiene, incident_kinds
from snapwatch.ingest.tokens import DEFECT_FINDINGS
from snapwatch.model import Api, Confidence, Diagnosis, Finding, FindingCode, Placement, Request, Severity

F = FindingCode

# Tie-break among equal scores: the more specific, more actionable cause first.
PRIORITY: tuple[FindingCode, ...] = (
    F.PIXEL_MALFORMED, F.TOKEN_MISSING, F.TOKEN_DRIFT, F.AUTH_PLACEMENT, F.TOKEN_QUOTED, F.TOKEN_WHITESPACE,
    F.TOKEN_BEARER_PREFIX, F.TOKEN_MALFORMED, F.TOKEN_EXPIRED, F.TOKEN_NOT_YET_VALID, F.TOKEN_STAGING,
    F.PIXEL_CHANGED, F.TOKEN_CHANGED, F.ENDPOINT_CHANGED, F.TOKEN_REVOKED, F.TOKEN_REJECTED_FOR_PIXEL,
    F.PROBE_REJECTED, F.PROBE_ACCEPTED, F.TOKEN_PREVIOUSLY_ACCEPTED, F.TOKEN_NOT_CANVAS, F.TOKEN_RECENTLY_ISSUED,
    F.RATE_LIMITED, F.SERVER_ERRORS, F.INVALID_EVENTS, F.LOG_SILENT, F.TOKEN_UNLOGGED, F.V2_DEPRECATED,
    F.LOG_GAP, F.PROBE_FAILED, F.TOKEN_IN_LOG,
)
# What the token looks like, by claims or age: Snap accepting this very token refutes them.
SHAPE = frozenset({F.TOKEN_MALFORMED, F.TOKEN_NOT_CANVAS, F.TOKEN_STAGING, F.TOKEN_EXPIRED, F.TOKEN_NOT_YET_VALID,
                   F.TOKEN_RECENTLY_ISSUED})
# Defects of the raw value that the fingerprint does not see (so its acceptance cannot refute them).
SURFACE = frozenset({F.TOKEN_QUOTED, F.TOKEN_WHITESPACE, F.TOKEN_BEARER_PREFIX})
EVIDENCE_ONLY = frozenset({F.TOKEN_PREVIOUSLY_ACCEPTED, F.TOKEN_UNLOGGED, F.PROBE_ACCEPTED, F.PROBE_FAILED})
HYGIENE = frozenset({F.V2_DEPRECATED, F.LOG_GAP, F.TOKEN_IN_LOG})


class Effect(StrEnum):
    """What a winning row does to the findings it outranks."""

    NOTE = "note"  # kept as an info note ("…, but <why not>"): listed, never the verdict, never critical
    ABSORB = "absorb"  # dropped as a finding; its evidence joins the winner's
    CAP = "cap"  # critical becomes warning


# A row's test: for a losing candidate, the reason it is outranked ("" without a reason), or None.
Check = Callable[[Case, Candidate], str | None]


@dataclass(frozen=True, slots=True)
class Precedence:
    """One row of the ranking rule: when ``winner`` holds, every finding in ``losers`` gets ``effect``."""

    situation: str  # the row's name, as its test cases are named
    winner: str  # the evidence that outranks
    losers: frozenset[FindingCode]
    effect: Effect
    why: str
    check: Check
    absorbed_by: FindingCode | None = None  # ABSORB: the finding that takes the evidence


def _accepted_despite_shape(c: Case, k: Candidate) -> str | None:
    if k.subject is None:
        return None
    u = c.accepted(k.subject, k.since, k.until)
    if u is None or u.last_accepted is None:
        return None
    return f"Snap accepted it for pixel {u.pixel or '(not logged)'} until {iso(u.last_accepted)}"


def _accepted_despite_placement(c: Case, k: Candidate) -> str | None:
    before, req = c.before, c.req
    if before is None or req is None or before.attrs.placement is not req.placement:
        return None
    return f"Snap accepted requests placed the same way ({req.placement}) until {iso(before.last_at)}"


def _probe_accepts(c: Case, k: Candidate) -> str | None:
    result, conf = c.ev.probe, c.ev.configured
    if result is None or result.outcome != "accepted" or conf is None or k.subject != conf.fingerprint:
        return None
    return f"Snap's validate endpoint accepted token {conf.fingerprint} for pixel {c.values['pixel']} " \
           f"at {iso(result.at)}"


def _accepted_again(c: Case, k: Candidate) -> str | None:
    rec, req = c.ev.recovery, c.req
    ok = rec.request if rec is not None else None
    if rec is None or ok is None or req is None:
        return None
    if (ok.token_fp, ok.pixel, ok.api, ok.placement) != (req.token_fp, req.pixel, req.api, req.placement):
        return None
    if ok.token_fp is None:  # not logged: the same only if the token source held the same token throughout
        then, now = c.configured_at(req.at), c.configured_at(rec.since)
        if then is None or now is None or then.fingerprint != now.fingerprint:
            return None
    return f"Snap accepted it again from {iso(rec.since)} on, with nothing changed in the requests"


def _clean_in_requests(c: Case, k: Candidate) -> str | None:
    sent = c.ev.seen.get(c.sent_fp) if c.sent_fp else None
    if k.origin != "configured" or sent is None or sent.fingerprint != k.subject:
        return None
    if any(DEFECT_FINDINGS[d] is k.code for d in sent.defects):
        return None
    return f"the requests carry token {sent.fingerprint} without them (python-dotenv strips one pair of " \
           "quotes and surrounding whitespace)"


def _winner_found(code: FindingCode) -> Check:
    def check(c: Case, k: Candidate) -> str | None:
        winner = c.found.get(code)
        return "" if winner is not None and winner.note is None else None
    return check


def _expired_before_streak(c: Case, k: Candidate) -> str | None:
    winner = c.found.get(F.TOKEN_EXPIRED)
    ok = winner is not None and winner.note is None and winner.since is not None and winner.since <= c.t0
    return "" if ok else None


def _always(c: Case, k: Candidate) -> str | None:
    return ""


def _incident(c: Case, k: Candidate) -> str | None:
    return "" if c.ev.incident is not None else None


def _no_incident(c: Case, k: Candidate) -> str | None:
    return "" if c.ev.incident is None else None


ALL = frozenset(FindingCode)
# The ranking rule, applied top to bottom before scoring. Evidence of behaviour (what Snap answered to
# this very token, what the requests carried) outranks static appearance (the token's shape, claims, age).
PRECEDENCE: tuple[Precedence, ...] = (
    Precedence("accepted-despite-shape", "Snap accepted this very token (same fingerprint) while the finding's "
               "condition already held (any shape; after an exp; before an nbf; after issue)",
               SHAPE, Effect.NOTE, "a shape, claim or age that Snap accepted cannot be why it refuses the token now",
               _accepted_despite_shape),
    Precedence("accepted-despite-placement", "Snap accepted requests that carried the token the same way",
               frozenset({F.AUTH_PLACEMENT}), Effect.NOTE,
               "a placement Snap accepted before does not explain a refusal", _accepted_despite_placement),
    Precedence("probe-accepts-now", "Snap's validate endpoint accepts this very token for this pixel now",
               SHAPE | SURFACE | {F.TOKEN_REJECTED_FOR_PIXEL, F.TOKEN_REVOKED}, Effect.NOTE,
               "a live answer about this very token outranks every inference about it", _probe_accepts),
    Precedence("accepted-again", "Snap accepted the very same requests again when the incident ended",
               frozenset({F.TOKEN_REVOKED, F.TOKEN_REJECTED_FOR_PIXEL}), Effect.NOTE,
               "a token Snap accepts again was not revoked, nor refused for this pixel: the cause was elsewhere "
               "(on Snap's side, if nothing else explains it)", _accepted_again),
    Precedence("clean-in-requests", "the requests carry the configured token without the raw value's defect",
               SURFACE, Effect.NOTE, "a defect that does not reach Snap cannot be why Snap refuses",
               _clean_in_requests),
    Precedence("drift-absorbs-revoked", "the backend sends another token than its source holds (token-drift)",
               frozenset({F.TOKEN_REVOKED}), Effect.ABSORB,
               "the source already holds another token: the step left is a restart, not a new token",
               _winner_found(F.TOKEN_DRIFT), F.TOKEN_DRIFT),
    Precedence("expiry-explains-the-end", "an exp that passed between the last acceptance and the streak",
               frozenset({F.TOKEN_REVOKED}), Effect.ABSORB,
               "the exp claim is the mechanism of the refusal: no one revoked the token",
               _expired_before_streak, F.TOKEN_EXPIRED),
    Precedence("evidence-is-no-cause", "always", EVIDENCE_ONLY, Effect.NOTE,
               "what Snap accepted, what the log cannot show and what the probe said are evidence: a verdict "
               "names a cause", _always),
    Precedence("hygiene-explains-no-incident", "an incident is diagnosed", HYGIENE, Effect.NOTE,
               "a deprecated endpoint, a lost log stretch or a token in the log is worth fixing, but it is not "
               "why Snap refused these requests", _incident),
    Precedence("no-incident-no-critical", "no incident is open (snapwatch diagnose of the present)", ALL,
               Effect.CAP, "a standing configuration problem while traffic flows is a warning, not an outage",
               _no_incident),
)


def apply_precedence(c: Case) -> None:
    """Apply ``PRECEDENCE`` to the candidates found, row by row."""
    for row in PRECEDENCE:
        for code in sorted(row.losers & c.found.keys()):
            k = c.found.get(code)
            if k is None or k.note is not None:
                continue
            reason = row.check(c, k)
            if reason is None:
                continue
            if row.effect is Effect.CAP:
                k.capped = True
            elif row.effect is Effect.ABSORB and row.absorbed_by is not None:
                winner = c.found[row.absorbed_by]
                winner.evidence += [e for e in k.evidence if e not in winner.evidence]
                del c.found[code]
            elif reason:
                k.note, k.confidence = reason, Confidence.LOW
            else:
                k.demoted = True


def placement(c: Case) -> None:
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
    if before is not None and before.attrs.placement is not req.placement:
        evidence.append(f"the last accepted request ({iso(before.last_at)}) carried the token in the "
                        f"{before.attrs.placement}")
    c.add(F.AUTH_PLACEMENT, Confidence.HIGH, DIRECT, *evidence)


def pixel_slot(c: Case) -> None:
    req = c.req
    # Ingest replaces a random-looking value in the pixel slot by its label (a key, not an id, sits there).
    if req is None or req.pixel is None or not req.pixel.startswith("token "):
        return
    c.add(F.PIXEL_MALFORMED, Confidence.HIGH, DIRECT,
          f"{iso(req.at)}: the failing request goes to {req.path}: where the pixel id belongs it carries "
          f"{req.pixel} (a long random-looking value, not a UUID)")


def changes(c: Case) -> None:
    req, before = c.req, c.before
    if req is None or before is None or not c.auth:
        return
    prev, since = before.attrs, f"the last accepted request ({iso(before.last_at)})"
    if prev.token_fp is None and req.token_fp is None:
        _source_changed(c, req)
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


def _source_changed(c: Case, req: Request) -> None:
    """Requests that show no token (v2): a change of the token source between the last 2xx and the streak."""
    if c.ev.env_history and c.before is not None:
        was, now = c.configured_at(c.before.last_at), c.configured_at(req.at)
        if was is not None and now is not None and was.fingerprint != now.fingerprint and now.at is not None \
                and c.before.last_at < now.at <= req.at:
            c.add(F.TOKEN_CHANGED, Confidence.MEDIUM, DIRECT,
                  f"the requests do not show their token; {now.source} changed from {was.fingerprint} to "
                  f"{now.fingerprint} at {iso(now.at)}, between the last accepted request "
                  f"({iso(c.before.last_at)}) and the first failing one ({iso(req.at)})", send_fp=str(now.fingerprint))


def recovery(c: Case) -> tuple[str, ...]:
    """What changed when a resolved incident recovered: the requests that are accepted now against the failing ones."""
    rec, failing = c.ev.recovery, c.req
    if rec is None:
        return ()
    ok = rec.request
    since = iso(rec.since)
    if ok is None or failing is None:
        return (f"2xx again since {since}",)
    lines: list[str] = []
    if ok.token_fp != failing.token_fp and ok.token_fp is not None:
        was = f" (the failing requests carried token {failing.token_fp})" if failing.token_fp else ""
        lines.append(f"requests carry token {ok.token_fp} since {since}; it is accepted{was}")
    elif ok.token_fp is None and failing.token_fp is None and c.ev.env_history:
        then, now = c.configured_at(failing.at), c.configured_at(rec.since)
        if then is not None and now is not None and then.fingerprint != now.fingerprint:
            lines.append(f"{now.source} holds token {now.fingerprint} since {iso(now.at) if now.at else '?'} "
                         f"(token {then.fingerprint} when the failures began); requests are accepted since {since}")
    if ok.pixel != failing.pixel and ok.pixel is not None:
        lines.append(f"requests go to pixel {ok.pixel} since {since} (the failing ones went to {failing.pixel})")
    if ok.api is not failing.api or (ok.path != failing.path and ok.pixel == failing.pixel):
        lines.append(f"requests go to {ok.api} {ok.path or '(no URL)'} since {since} "
                     f"(the failing ones went to {failing.api} {failing.path or '(no URL)'})")
    if ok.placement is not failing.placement:
        lines.append(f"requests carry the token in the {ok.placement} since {since} "
                     f"(the failing ones: {failing.placement})")
    if not lines:
        token = f"token {ok.token_fp}" if ok.token_fp else "the same requests"
        lines.append(f"{token} accepted again since {since}, with nothing changed in the requests")
    return tuple(lines)


def _finding(c: Case, cand: Candidate) -> Finding:
    values = {**c.values, **cand.values}
    title = knowledge.title(cand.code, values)
    remediation = knowledge.remediation(cand.code, values)
    if cand.note is not None:
        subject = f"Token {cand.subject}" if cand.subject else "The token"
        title = f"{subject} {knowledge.LOOKS.get(cand.code, 'looks suspect')}, but {cand.note}"
        remediation = (knowledge.NOTE_REMEDIATION,)
    return Finding(code=cand.code, severity=cand.severity, confidence=cand.confidence, title=title,
                   evidence=tuple(cand.evidence), remediation=remediation)


def rank(candidates: list[Candidate]) -> list[Candidate]:
    """Causes before notes; then highest score first; equal scores by ``PRIORITY``."""
    return sorted(candidates, key=lambda k: (k.severity is Severity.INFO, -k.score, PRIORITY.index(k.code)))


def diagnose(ev: Evidence) -> Diagnosis:
    """Ranked findings for the evidence; ``ruled_out`` says what the evidence excludes; a resolved incident's
    ``recovery`` what changed when it ended."""
    c = Case(ev)
    for step in (drift, placement, pixel_slot, changes, token_checks, acceptance, unlogged, probe, incident_kinds,
                 hygiene, apply_precedence):
        step(c)
    ranked = rank(list(c.found.values()))
    ok = ev.recovery.request if ev.recovery is not None else None
    return Diagnosis(findings=tuple(_finding(c, k) for k in ranked), ruled_out=tuple(c.ruled_out),
                     recovery=recovery(c), working_token=ok.token_fp if ok is not None else None)
