"""No message contradicts itself: every diagnosis and alert the scenarios produce, against the rules of
``tests.helpers.contradictions`` (each rule is first shown to catch what it is meant to catch)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from snapwatch.alert.messages import render
from snapwatch.diagnose.rank import diagnose
from snapwatch.model import Alert, AlertKind, Confidence, Diagnosis, Finding, FindingCode, Severity
from tests.diagnose.test_diagnose import NAMES, load
from tests.diagnose.test_ranking import CASES
from tests.helpers.contradictions import contradictions, said_in

F, S = FindingCode, Severity
FP, OTHER = "3f9a1c0b7d2e", "9be1d2c3a4f5"


def finding(code: FindingCode, severity: Severity = S.CRITICAL, *evidence: str) -> Finding:
    return Finding(code, severity, Confidence.HIGH, f"title of {code.value}", evidence, ("do something",))


# One example per rule, as the issue met them: each must be caught.
BROKEN: dict[str, Diagnosis | str] = {
    "R1": Diagnosis((finding(F.TOKEN_DRIFT, S.CRITICAL, f"requests carry token {FP}"),),
                    (f"token drift: the requests carry the configured token {FP} (SNAP_ACCESS_TOKEN in .env)",)),
    "R2": Diagnosis((finding(F.TOKEN_MALFORMED, S.CRITICAL, f"token {FP} in the requests: not a JWT"),),
                    (f"token change: the last accepted request (T) carried the same token {FP}",)),
    "R3": Diagnosis((finding(F.TOKEN_REJECTED_FOR_PIXEL), finding(F.TOKEN_PREVIOUSLY_ACCEPTED, S.INFO))),
    "R4": Diagnosis((finding(F.TOKEN_REVOKED), finding(F.PIXEL_CHANGED))),
    "R5": Diagnosis((finding(F.TOKEN_REVOKED), finding(F.PROBE_ACCEPTED, S.INFO))),
    "R6": Diagnosis((finding(F.TOKEN_DRIFT), finding(F.TOKEN_REVOKED))),
    # A Diagnosis cannot make a note its verdict (model.Diagnosis.cause): a message could, so the text is checked.
    "R7": "Verdict:\n  token-revoked: Snap stopped accepting this token (info, low confidence)\n",
    "R8": Diagnosis(()),
    "R9": Diagnosis((finding(F.TOKEN_REVOKED),), ("token change: …",),
                    (f"token {FP} accepted again since T, with nothing changed in the requests",)),
}


@pytest.mark.parametrize("rule", sorted(BROKEN))
def test_each_rule_catches_its_contradiction(rule: str) -> None:
    found = contradictions(BROKEN[rule])
    assert [line[:2] for line in found].count(rule) >= 1, found


def test_a_shape_blamed_on_another_token_is_no_contradiction() -> None:
    d = Diagnosis((finding(F.TOKEN_MALFORMED, S.CRITICAL, f"token {OTHER} (SNAP_ACCESS_TOKEN in .env): cut"),),
                  (f"token change: the last accepted request (T) carried the same token {FP}",))
    assert contradictions(d) == []


def _messages(d: Diagnosis, story_incident: object) -> list[str]:
    """The OPENED message, and the RESOLVED one for a resolved incident, as the targets get them."""
    from snapwatch.model import Incident

    assert isinstance(story_incident, Incident)
    kind = AlertKind.RESOLVED if story_incident.resolved_at is not None else AlertKind.OPENED
    opened = Alert("a1", AlertKind.OPENED, story_incident.opened_at + timedelta(minutes=1), "web-1",
                   replace(story_incident, resolved_at=None), d, None, None)
    out = [render(opened).text, render(opened).markdown]
    if kind is AlertKind.RESOLVED:
        out.append(render(replace(opened, kind=AlertKind.RESOLVED, incident=story_incident)).text)
    return out


DIAGNOSES = [(f"scenario {n}", lambda n=n: load(n).evidence) for n in NAMES] + \
    [(f"case {n}", lambda n=n: CASES[n].story.evidence()) for n in CASES]


@pytest.mark.parametrize(("name", "evidence"), DIAGNOSES, ids=[n for n, _ in DIAGNOSES])
def test_no_diagnosis_or_message_contradicts_itself(name: str, evidence: object) -> None:
    ev = evidence()  # type: ignore[operator]
    d = diagnose(ev)
    assert contradictions(d) == [], name
    if ev.incident is None:
        return
    for text in _messages(d, ev.incident):
        said = said_in(text)
        assert said.verdict == d.verdict, (said.verdict, text)  # the message is read back, so the check bites
        assert contradictions(text) == [], text
