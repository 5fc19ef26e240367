"""The ranking rule, case by case: each case is a situation an on-call person meets, told as a story.

Every case names its verdict (``unknown`` when nothing names a cause), findings that must be there, findings
that must be info notes (outranked: listed, never the verdict, never critical), and findings that must be
absent. ``rank.PRECEDENCE`` is the rule under test; each of its rows is exercised by at least one case.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from snapwatch.diagnose.rank import PRECEDENCE, diagnose
from snapwatch.ingest.tokens import fingerprint
from snapwatch.model import Api, Diagnosis, Placement, ProbeOutcome, Rule, Severity
from tests.helpers.contradictions import contradictions
from tests.helpers.stories import FRESH, ODD, PIXEL2, STAGING, A, B, Run, Story, oauth
from tests.helpers.tokens import assert_no_secret


@dataclass(frozen=True)
class Case:
    story: Story
    verdict: str
    severity: str | None = None  # of the verdict
    present: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # present as info notes
    absent: tuple[str, ...] = ()
    rows: tuple[str, ...] = ()  # PRECEDENCE rows this case exercises
    said: dict[str, str] = field(default_factory=dict)  # code → words its title or evidence must hold


OK, FAIL = 200, 401
BEFORE, STREAK_AT = Run(0, OK, 20), 12  # accepted for ten minutes; the failures from minute 12


def accepted_then(token: str = A, **fail: object) -> list[Run]:
    return [Run(0, OK, 20, token), Run(STREAK_AT, FAIL, 10, token, **fail)]  # type: ignore[arg-type]


CASES: dict[str, Case] = {
    "accepted then rejected with nothing changed": Case(
        Story(accepted_then()), "token-revoked", "critical", present=("token-previously-accepted",),
        notes=("token-previously-accepted",), absent=("token-rejected-for-pixel", "token-drift"),
        rows=("evidence-is-no-cause",), said={"token-revoked": "nothing in the requests changed"}),
    "odd-shaped but accepted": Case(
        Story(accepted_then(ODD), env=ODD), "token-revoked", "critical", notes=("token-malformed",),
        rows=("accepted-despite-shape",), said={"token-malformed": "but Snap accepted it for pixel"}),
    "odd-shaped and never accepted": Case(
        Story([Run(0, FAIL, 10, ODD)], env=ODD), "token-malformed", "critical",
        absent=("token-revoked", "token-rejected-for-pixel")),
    "quoted in .env but clean in requests": Case(
        Story(accepted_then(), env=f'"{A}"'), "token-revoked", "critical", notes=("token-quoted",),
        rows=("clean-in-requests",), said={"token-quoted": "without them"}),
    "quoted in the requests and never accepted": Case(
        Story([Run(0, FAIL, 10, f'"{A}"')], env=f'"{A}"'), "token-quoted", "critical",
        absent=("token-rejected-for-pixel",)),
    "new token never accepted": Case(
        Story([BEFORE, Run(STREAK_AT, FAIL, 10, B)], env=B), "token-changed", "critical",
        present=("token-rejected-for-pixel",), absent=("token-revoked", "token-drift")),
    "new token in .env, backend not restarted": Case(
        Story(accepted_then(), env=B, env_history=[(-600, A), (10, B)], restart_pending=True), "token-drift",
        "critical", present=("token-previously-accepted",), absent=("token-revoked",),
        rows=("drift-absorbs-revoked",), said={"token-drift": "nothing in the requests changed"}),
    ".env changed after the last request: the fix in progress": Case(
        Story(accepted_then(), env=B, env_history=[(-600, A), (30, B)]), "token-revoked", "critical",
        absent=("token-drift",)),
    ".env changed during the incident, the old token still sent": Case(
        Story([*accepted_then(), Run(20, FAIL, 4)], env=B, env_history=[(-600, A), (18, B)]), "token-drift",
        "critical", absent=("token-revoked",), said={"token-drift": "still carry"}),
    "resolved by a token swap, judged with the daemon's .env history": Case(
        Story([*accepted_then(), Run(18, OK, 5, B)], env=B, env_history=[(-600, A), (17, B)]), "token-revoked",
        "critical", absent=("token-drift",), said={"token-revoked": fingerprint(A)}),
    "resolved by a token swap and scanned with today's .env": Case(
        Story([*accepted_then(), Run(18, OK, 5, B)], env=B, env_history=[(None, B)]), "token-revoked",
        "critical", absent=("token-drift", "token-changed")),
    "still open and scanned with today's .env": Case(
        Story(accepted_then(), env=B, env_history=[(None, B)]), "token-drift", "critical", absent=("token-revoked",)),
    "accepted again with nothing changed (Snap-side)": Case(
        Story([*accepted_then(), Run(18, OK, 5)]), "unknown", present=("token-previously-accepted",),
        notes=("token-revoked",), rows=("accepted-again",), said={"token-revoked": "accepted it again"}),
    "v2 unlogged": Case(
        Story([Run(0, OK, 20, None, api=Api.V2), Run(STREAK_AT, FAIL, 10, None, api=Api.V2)]), "token-revoked",
        "critical", notes=("token-unlogged", "v2-deprecated"),
        absent=("token-missing", "token-rejected-for-pixel", "auth-placement"), rows=("hygiene-explains-no-incident",),
        said={"token-unlogged": "does not show its token"}),
    "v2 unlogged, the .env changed between the last 2xx and the failures": Case(
        Story([Run(0, OK, 20, None, api=Api.V2), Run(STREAK_AT, FAIL, 10, None, api=Api.V2)], env=B,
              env_history=[(-600, A), (11, B)]), "token-changed", "critical", absent=("token-revoked",),
        said={"token-changed": "changed from"}),
    "OAuth token accepted until its exp": Case(
        Story(accepted_then(oauth(11)), env=oauth(11)), "token-expired", "critical",
        notes=("token-not-canvas",), absent=("token-revoked",), rows=("expiry-explains-the-end",)),
    "OAuth token accepted after its exp": Case(
        Story(accepted_then(oauth(5)), env=oauth(5)), "token-revoked", "critical",
        notes=("token-expired", "token-not-canvas")),
    "staging-looking token accepted": Case(
        Story(accepted_then(STAGING), env=STAGING), "token-revoked", "critical", notes=("token-staging",)),
    "staging token never accepted": Case(
        Story([Run(0, FAIL, 10, STAGING)], env=STAGING), "token-staging", "critical"),
    "freshly issued token accepted, then rejected": Case(
        Story([Run(6, OK, 8, FRESH), Run(STREAK_AT, FAIL, 10, FRESH)], env=FRESH), "token-revoked", "critical",
        notes=("token-recently-issued",)),
    "probe accepts a token the log never saw accepted": Case(
        Story([Run(0, FAIL, 10)], probe=ProbeOutcome.ACCEPTED), "unknown", present=("probe-accepted",),
        absent=("token-rejected-for-pixel",)),
    "probe accepts a token that was accepted, then refused": Case(
        Story(accepted_then(), probe=ProbeOutcome.ACCEPTED), "unknown", notes=("token-revoked", "probe-accepted"),
        rows=("probe-accepts-now",), said={"token-revoked": "validate endpoint accepted"}),
    "probe rejects a token never accepted": Case(
        Story([Run(0, FAIL, 10)], probe=ProbeOutcome.REJECTED), "token-rejected-for-pixel", "critical",
        present=("probe-rejected",)),
    "the token left the URL": Case(
        Story([BEFORE, Run(STREAK_AT, FAIL, 10, None)]), "auth-placement", "critical", absent=("token-revoked",)),
    "header-only placement Snap accepted before": Case(
        Story([Run(0, OK, 20, placement=Placement.HEADER), Run(STREAK_AT, FAIL, 10, placement=Placement.HEADER)]),
        "token-revoked", "critical", notes=("auth-placement",), rows=("accepted-despite-placement",)),
    "the pixel changed": Case(
        Story([BEFORE, Run(STREAK_AT, FAIL, 10, pixel=PIXEL2)]), "pixel-changed", "critical",
        absent=("token-revoked", "token-rejected-for-pixel")),
    "rate-limited with an accepted token": Case(
        Story([BEFORE, Run(STREAK_AT, 429, 10, every=1)], rule=Rule.RATE_LIMITED), "rate-limited", "warning",
        absent=("token-revoked", "token-drift")),
    "odd-shaped token after traffic recovered (diagnose of now)": Case(
        Story([*accepted_then(ODD), Run(18, OK, 5, ODD)], env=ODD, rule=None), "token-in-log", "warning",
        notes=("token-malformed",), absent=("token-revoked",)),
    "no incident: a malformed token in .env while traffic flows": Case(
        Story([Run(0, OK, 20)], env=ODD[:-30], rule=None), "token-drift", "warning", present=("token-malformed",),
        rows=("no-incident-no-critical",)),
}


def _codes(d: Diagnosis) -> list[str]:
    return [f.code.value for f in d.findings]


@pytest.mark.parametrize("name", list(CASES))
def test_ranking(name: str) -> None:
    case = CASES[name]
    d = diagnose(case.story.evidence())
    codes, by_code = _codes(d), {f.code.value: f for f in d.findings}
    assert d.verdict == case.verdict, (codes, d.ruled_out)
    if case.severity is not None:
        assert d.cause is not None and d.cause.severity.value == case.severity
    for code in (*case.present, *case.notes):
        assert code in codes, (code, codes)
    for code in case.notes:
        assert by_code[code].severity is Severity.INFO, by_code[code]
    for code in case.absent:
        assert code not in codes, (code, codes)
    for code, words in case.said.items():
        f = by_code[code]
        assert any(words in text for text in (f.title, *f.evidence)), (words, f)
    if case.story.rule is None:  # no incident open: nothing is critical
        assert all(f.severity is not Severity.CRITICAL for f in d.findings)
    # Causes first, notes after; the verdict is never a note, and nothing contradicts anything else.
    severities = [f.severity is Severity.INFO for f in d.findings]
    assert severities == sorted(severities)
    assert contradictions(d) == []
    assert_no_secret(repr(d.to_json()), *case.story.secrets())


def test_at_least_twenty_named_cases() -> None:
    assert len(CASES) >= 20


def test_every_precedence_row_is_exercised_and_documented() -> None:
    exercised = {row for case in CASES.values() for row in case.rows}
    assert exercised == {row.situation for row in PRECEDENCE}
    for row in PRECEDENCE:
        assert row.winner and row.why and row.losers, row.situation
