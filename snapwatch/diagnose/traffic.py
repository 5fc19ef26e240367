"""Diagnosis rules beyond the token: 429, 5xx, 400/INVALID, silence, log gaps, tokens in the log, v2, and how
the log itself is written (requests left unanswered, interleaved processes)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from snapwatch.diagnose import facts as knowledge
from snapwatch.diagnose.case import BACKGROUND, DIRECT, PRESENT, Case, fps_in, iso
from snapwatch.ingest.body import body_fields
from snapwatch.model import Api, Confidence, Finding, Rule
from snapwatch.model import FindingCode as F


def incident_kinds(c: Case) -> None:
    """What the incident's own statuses and rule say: rate limits, Snap-side errors, invalid events, silence."""
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
            c.rule_out("the token: 5xx answers are Snap-side trouble, not an authentication failure")
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


def hygiene(c: Case) -> None:
    """Background findings: the deprecated v2 endpoint, lost log stretches, tokens in clear text in the log."""
    ev, req = c.ev, c.req
    if req is not None and req.api is Api.V2:
        c.add(F.V2_DEPRECATED, Confidence.HIGH, PRESENT if ev.incident is not None else DIRECT,
              f"{iso(req.at)}: requests go to {req.path or '/v2/conversion'}; "
              f"{knowledge.ENDPOINTS[Api.V2].deprecated}")
    if ev.log_gaps:
        c.add(F.LOG_GAP, Confidence.HIGH, PRESENT, *ev.log_gaps)
    if ev.tokens_in_log:
        fps = sorted(ev.seen) or fps_in(ev.history)
        c.add(F.TOKEN_IN_LOG, Confidence.HIGH, BACKGROUND,
              f"{c.values['logs']}: request URLs carry the access token in clear text "
              f"(tokens {', '.join(fps) or 'unknown'})")


@dataclass(frozen=True, slots=True)
class LogCounts:
    """What reading one log showed about how it is written: requests left unanswered, interleaved parts."""

    path: str
    unanswered: int = 0
    interleaved: int = 0
    pairing_timeout: str = "2m"


def log_findings(logs: Sequence[LogCounts]) -> list[Finding]:
    """Findings about the logs themselves, whatever the incidents: ``requests-unanswered`` (with the count
    of requests that never got a logged response) and ``log-interleaved`` (several processes, no process
    id in the format). One finding per code, over every log."""
    found: list[Finding] = []
    where = ", ".join(log.path for log in logs) or "the backend's CAPI log"
    unanswered = [log for log in logs if log.unanswered]
    if unanswered:
        total = sum(log.unanswered for log in unanswered)
        found.append(_log_finding(F.REQUESTS_UNANSWERED, where, total, *(
            f"{log.path}: {log.unanswered} request(s) got no response within pairing_timeout "
            f"({log.pairing_timeout}) or by the end of the log; none was paired with a later response"
            for log in unanswered)))
    interleaved = [log for log in logs if log.interleaved]
    if interleaved:
        found.append(_log_finding(F.LOG_INTERLEAVED, where, None, *(
            f"{log.path}: {log.interleaved} status, body or head line(s) came after other blocks' lines, "
            "and the lines name no process" for log in interleaved)))
    return found


def _log_finding(code: F, logs: str, count: int | None, *evidence: str) -> Finding:
    facts = knowledge.FINDINGS[code]
    values = {"logs": logs}
    return Finding(code, facts.severity, Confidence.HIGH, knowledge.title(code, values), tuple(evidence),
                   knowledge.remediation(code, values), count=count)


def invalid_reasons(bodies: Iterable[str]) -> Counter[str]:
    """Count the reasons Snap gives in 400 / INVALID bodies (error messages first, then the reason)."""
    counted: Counter[str] = Counter()
    for body, times in Counter(bodies).items():  # Snap words most of them alike: each text read once
        fields = body_fields(body)
        reasons = fields.error_msgs or fields.record_reasons
        if not reasons:
            reasons = (fields.reason or fields.text or "(no reason given)",)
        for reason in reasons:
            counted[reason.strip()[:200]] += times
    return counted
