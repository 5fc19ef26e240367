"""The alert lifecycle: what is owed when, merged, capped, and kept across restarts of the state store."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapwatch.alert.policy import AlertPolicy, alert_id
from snapwatch.config import AlertsConfig, RulesConfig, validated
from snapwatch.detect.detector import Detector, incident_id
from snapwatch.model import (
    Alert,
    AlertKind,
    Confidence,
    Diagnosis,
    Exchange,
    Finding,
    FindingCode,
    Incident,
    Response,
    Rule,
    Severity,
    TokenKind,
    Transition,
    TransitionKind,
)
from tests.helpers.exchanges import exchange

T0 = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)
M = timedelta(minutes=1)
H = timedelta(hours=1)
HOST = "backend-1"
FP = "sha256:1f2e3d4c"


def incident(rule: Rule, source: str, opened: datetime, responses: int = 5, resolved: datetime | None = None,
             last: datetime | None = None) -> Incident:
    first = exchange(opened, 401, '{"status": "UNAUTHORIZED"}', pixel="pixel-1", fp=FP, source=source)
    return Incident(id=incident_id(rule, source, opened, 1), rule=rule, source=source, opened_at=opened,
                    resolved_at=resolved, responses=responses, by_status=(("401", responses),),
                    last_at=last or resolved or opened, first_failure=first)


def diagnosis(*codes: FindingCode) -> Diagnosis:
    return Diagnosis(findings=tuple(Finding(c, Severity.CRITICAL, Confidence.HIGH, f"because {c.value}",
                                            ("evidence",), ("step one", "step two")) for c in codes),
                     ruled_out=("token-malformed",))


def opened(inc: Incident) -> Transition:
    return Transition(TransitionKind.OPENED, inc)


def updated(inc: Incident, responses: int, at: datetime) -> Transition:
    return Transition(TransitionKind.UPDATED, replace(inc, responses=responses, last_at=at))


def resolved(inc: Incident, at: datetime, responses: int | None = None) -> Transition:
    n = inc.responses if responses is None else responses
    return Transition(TransitionKind.RESOLVED, replace(inc, resolved_at=at, last_at=at, responses=n))


def policy(db: Path, **alerts: object) -> AlertPolicy:
    return AlertPolicy(sqlite3.connect(db), validated(AlertsConfig, alerts), HOST)


def kinds(alerts: list[Alert]) -> list[AlertKind]:
    return [a.kind for a in alerts]


def test_opened_alert_waits_for_group_wait(tmp_path: Path) -> None:
    p = policy(tmp_path / "s.db", group_wait="10s")
    a = incident(Rule.AUTH_FAILURES, "app.log", T0)
    p.on_transition(opened(a), diagnosis(FindingCode.TOKEN_EXPIRED), T0)
    assert p.due(T0 + 9 * S, FP, TokenKind.CANVAS_S2S) == []
    assert p.next_due(T0 + 9 * S) == T0 + 10 * S
    [alert] = p.due(T0 + 10 * S, FP, TokenKind.CANVAS_S2S)
    assert alert.kind is AlertKind.OPENED and alert.incident == a and alert.related == ()
    assert alert.diagnosis is not None and alert.diagnosis.verdict == "token-expired"
    assert (alert.host, alert.token_fp, alert.token_kind, alert.created_at) == (HOST, FP, TokenKind.CANVAS_S2S,
                                                                                T0 + 10 * S)
    assert alert.id == alert_id(HOST, a.id, AlertKind.OPENED, 0)
    assert p.due(T0 + 10 * S) == []  # handed out once
    assert p.next_due(T0 + 10 * S) == T0 + 10 * S + H  # the first reminder


def test_rules_opening_within_group_wait_make_one_alert(tmp_path: Path) -> None:
    p = policy(tmp_path / "s.db", group_wait="10s")
    invalid = incident(Rule.INVALID_EVENTS, "app.log", T0)
    auth = incident(Rule.AUTH_FAILURES, "app.log", T0 + 3 * S)
    other = incident(Rule.SERVER_ERRORS, "other.log", T0 + 4 * S)
    late = incident(Rule.RATE_LIMITED, "app.log", T0 + 11 * S)
    p.on_transition(opened(invalid), None, T0)
    p.on_transition(opened(auth), None, T0 + 3 * S)
    p.on_transition(opened(other), None, T0 + 4 * S)
    got = p.due(T0 + 10 * S)
    assert kinds(got) == [AlertKind.OPENED]
    assert got[0].incident == auth  # auth-failures leads: the most important rule, not the first to open
    assert got[0].related == (invalid,)
    p.on_transition(opened(late), None, T0 + 11 * S)  # after the group went out: a group of its own
    [other_alert] = p.due(T0 + 14 * S)
    assert other_alert.incident == other and other_alert.related == ()
    [late_alert] = p.due(T0 + 21 * S)
    assert late_alert.incident == late


def test_reminders_carry_updated_counts_and_the_current_verdict(tmp_path: Path) -> None:
    p = policy(tmp_path / "s.db", group_wait="10s", repeat_every="1h")
    a = incident(Rule.AUTH_FAILURES, "app.log", T0)
    p.on_transition(opened(a), diagnosis(FindingCode.TOKEN_EXPIRED), T0)
    assert kinds(p.due(T0 + 10 * S)) == [AlertKind.OPENED]
    p.on_transition(updated(a, 50, T0 + 30 * M), None, T0 + 30 * M)
    assert p.due(T0 + 30 * M) == []  # counts alone owe nothing
    assert p.due(T0 + H + 9 * S) == []
    [r1] = p.due(T0 + H + 10 * S)
    assert r1.kind is AlertKind.REMINDER and r1.incident is not None and r1.incident.responses == 50
    assert r1.diagnosis is not None and r1.diagnosis.verdict == "token-expired"
    p.on_transition(updated(a, 80, T0 + 90 * M), None, T0 + 90 * M)
    [r2] = p.due(T0 + 2 * H + 10 * S)
    assert r2.kind is AlertKind.REMINDER and r2.incident is not None and r2.incident.responses == 80
    assert r2.id != r1.id == alert_id(HOST, a.id, AlertKind.REMINDER, 0)


def test_a_material_diagnosis_change_owes_one_update(tmp_path: Path) -> None:
    p = policy(tmp_path / "s.db", group_wait="10s")
    a = incident(Rule.AUTH_FAILURES, "app.log", T0)
    p.on_transition(opened(a), diagnosis(FindingCode.TOKEN_EXPIRED), T0)
    p.on_diagnosis(a.id, diagnosis(FindingCode.AUTH_PLACEMENT), T0 + 5 * S)  # before the alert: it rides along
    [first] = p.due(T0 + 10 * S)
    assert first.diagnosis is not None and first.diagnosis.verdict == "auth-placement"
    p.on_diagnosis(a.id, diagnosis(FindingCode.AUTH_PLACEMENT, FindingCode.TOKEN_STAGING), T0 + M)
    assert p.due(T0 + M) == []  # same verdict, no probe: not material
    p.on_diagnosis(a.id, diagnosis(FindingCode.TOKEN_CHANGED), T0 + 2 * M)
    p.on_diagnosis(a.id, diagnosis(FindingCode.TOKEN_CHANGED), T0 + 3 * M)
    assert p.next_due(T0 + 3 * M) == T0 + 3 * M
    [update] = p.due(T0 + 3 * M)
    assert update.kind is AlertKind.UPDATE and update.diagnosis is not None
    assert update.diagnosis.verdict == "token-changed"
    assert p.due(T0 + 4 * M) == []
    p.on_diagnosis(a.id, diagnosis(FindingCode.TOKEN_CHANGED, FindingCode.PROBE_REJECTED), T0 + 5 * M)
    [probe] = p.due(T0 + 5 * M)
    assert probe.kind is AlertKind.UPDATE and probe.id != update.id
    p.on_diagnosis(a.id, diagnosis(FindingCode.TOKEN_EXPIRED), T0 + 6 * M)
    p.on_diagnosis(a.id, diagnosis(FindingCode.TOKEN_CHANGED, FindingCode.PROBE_REJECTED), T0 + 7 * M)
    assert p.due(T0 + 7 * M) == []  # changed and changed back before it went out: nothing to say


def test_resolve_owes_one_resolved_with_duration_and_failures(tmp_path: Path) -> None:
    p = policy(tmp_path / "s.db", group_wait="10s")
    a = incident(Rule.AUTH_FAILURES, "app.log", T0)
    p.on_transition(opened(a), None, T0)
    p.due(T0 + 10 * S)
    p.on_transition(resolved(a, T0 + 30 * M, responses=120), None, T0 + 30 * M)
    [done] = p.due(T0 + 30 * M)
    assert done.kind is AlertKind.RESOLVED and done.incident is not None
    assert done.incident.resolved_at is not None and done.incident.resolved_at - done.incident.opened_at == 30 * M
    assert done.incident.responses == 120
    p.on_transition(resolved(a, T0 + 30 * M, responses=120), None, T0 + 31 * M)  # replayed transitions
    p.on_transition(opened(a), None, T0 + 32 * M)
    assert p.due(T0 + 5 * H) == [] and p.next_due(T0 + 5 * H) is None


def test_a_blip_shorter_than_group_wait_sends_nothing(tmp_path: Path) -> None:
    p = policy(tmp_path / "s.db", group_wait="10s")
    a = incident(Rule.AUTH_FAILURES, "app.log", T0)
    p.on_transition(opened(a), None, T0)
    p.on_transition(resolved(a, T0 + 6 * S), None, T0 + 6 * S)
    assert p.next_due(T0 + 6 * S) is None
    assert p.due(T0 + 3 * H) == []


def test_resolved_after_due_but_before_handing_out_sends_both_in_order(tmp_path: Path) -> None:
    p = policy(tmp_path / "s.db", group_wait="10s")
    a = incident(Rule.AUTH_FAILURES, "app.log", T0)
    p.on_transition(opened(a), None, T0)
    p.on_transition(resolved(a, T0 + 12 * S), None, T0 + 12 * S)  # the daemon was busy at T0+10s
    p.on_transition(opened(a), None, T0 + 12 * S)  # a replay must not reopen it
    got = p.due(T0 + 12 * S)
    assert kinds(got) == [AlertKind.OPENED, AlertKind.RESOLVED]
    assert got[1].incident is not None and got[1].incident.resolved_at == T0 + 12 * S


def test_send_resolved_off(tmp_path: Path) -> None:
    p = policy(tmp_path / "s.db", group_wait="0s", send_resolved=False)
    a = incident(Rule.AUTH_FAILURES, "app.log", T0)
    p.on_transition(opened(a), None, T0)
    assert kinds(p.due(T0)) == [AlertKind.OPENED]
    p.on_transition(resolved(a, T0 + M), None, T0 + M)
    assert p.due(T0 + M) == [] and p.next_due(T0 + M) is None


def test_cap_holds_back_then_one_summary_and_resolved_is_never_dropped(tmp_path: Path) -> None:
    """max_per_hour=3: A opens (1), B opens (2) and C is held back: the third slot is kept for A's or
    B's RESOLVED. A resolves (3). D is held back. Once A's OPENED leaves the hour, B still owes its
    RESOLVED, so the summary waits for one more slot; it says 2."""
    p = policy(tmp_path / "s.db", group_wait="0s", max_per_hour=3, repeat_every="6h")
    a, b, c, d = (incident(Rule.AUTH_FAILURES, f"s{i}.log", T0 + i * M) for i in range(4))
    p.on_transition(opened(a), None, T0)
    assert kinds(p.due(T0)) == [AlertKind.OPENED]
    p.on_transition(opened(b), None, T0 + M)
    assert [x.incident for x in p.due(T0 + M)] == [b]
    p.on_transition(opened(c), None, T0 + 2 * M)
    assert p.due(T0 + 2 * M) == [] and p.held_back() == 1
    p.on_transition(resolved(a, T0 + 10 * M), None, T0 + 10 * M)
    assert kinds(p.due(T0 + 10 * M)) == [AlertKind.RESOLVED]
    p.on_transition(opened(d), None, T0 + 20 * M)
    assert p.due(T0 + 20 * M) == [] and p.held_back() == 2
    p.on_transition(resolved(c, T0 + 30 * M), None, T0 + 30 * M)  # its OPENED was held: no RESOLVED
    assert p.due(T0 + 30 * M) == []
    assert p.next_due(T0 + 30 * M) == T0 + M + H  # A's OPENED at T0 leaves; B's resolve keeps one slot
    [summary] = p.due(T0 + M + H)
    assert summary.kind is AlertKind.HELD_BACK and summary.held_back == 2 and summary.incident is None
    p.on_transition(resolved(b, T0 + 62 * M), None, T0 + 62 * M)
    assert kinds(p.due(T0 + 62 * M)) == [AlertKind.RESOLVED]


def test_a_rolled_back_hand_out_is_handed_out_again_with_the_same_ids(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    p = policy(db, group_wait="0s")
    a = incident(Rule.AUTH_FAILURES, "app.log", T0)
    p.on_transition(opened(a), None, T0)
    conn = p._conn
    conn.execute("BEGIN IMMEDIATE")  # the daemon's transaction around due() and the outbox write
    first = p.due(T0)
    conn.rollback()  # a crash before the outbox commit
    conn.close()
    again = policy(db, group_wait="0s").due(T0 + S)
    assert [x.id for x in again] == [x.id for x in first] and kinds(again) == [AlertKind.OPENED]


# -- restarts -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    at: datetime
    transition: Transition | None = None
    incident_id: str = ""
    diagnosis: Diagnosis | None = None


def scenario() -> list[Op]:
    a = incident(Rule.AUTH_FAILURES, "one.log", T0)
    b = incident(Rule.ERROR_RATE, "one.log", T0 + 3 * S)
    c = incident(Rule.SERVER_ERRORS, "two.log", T0 + 5 * S)
    burst = [incident(Rule.AUTH_FAILURES, f"burst{i}.log", T0 + 50 * M + i * S) for i in range(4)]
    ops = [
        Op(T0, opened(a), diagnosis=diagnosis(FindingCode.TOKEN_EXPIRED)),
        Op(T0 + 3 * S, opened(b)),
        Op(T0 + 5 * S, opened(c)),
        Op(T0 + 8 * S, resolved(c, T0 + 8 * S)),
        Op(T0 + 20 * M, updated(a, 40, T0 + 20 * M)),
        Op(T0 + 25 * M, incident_id=a.id, diagnosis=diagnosis(FindingCode.AUTH_PLACEMENT)),
        Op(T0 + 26 * M, incident_id=a.id, diagnosis=diagnosis(FindingCode.AUTH_PLACEMENT, FindingCode.PROBE_REJECTED)),
        Op(T0 + 40 * M, resolved(b, T0 + 40 * M, 30)),
        *[Op(x.opened_at, opened(x)) for x in burst],
        Op(T0 + 70 * M, resolved(burst[0], T0 + 70 * M)),
        Op(T0 + 2 * H, resolved(a, T0 + 2 * H, 900)),
        Op(T0 + 3 * H),
    ]
    return ops


Seen = tuple[str, AlertKind, datetime, str | None, int | None, str | None, int, tuple[str, ...]]


def project(alerts: list[Alert]) -> list[Seen]:
    return [(x.id, x.kind, x.created_at, x.incident.id if x.incident else None,
             x.incident.responses if x.incident else None, x.diagnosis.verdict if x.diagnosis else None,
             x.held_back, tuple(r.id for r in x.related)) for x in alerts]


def run(db: Path, restarts: frozenset[int]) -> list[Seen]:
    """Replays the scenario like the daemon does (hand out at every next_due), restarting before each index.

    Without inhibit rules: b (error-rate) rides in a's OPENED as a related incident and is resolved on its
    own, which exercises the cap's bookkeeping more than folding it would (``test_inhibition_*``)."""
    cfg = {"group_wait": "10s", "repeat_every": "30m", "max_per_hour": 6, "inhibit_rules": []}
    p = policy(db, **cfg)
    out: list[Alert] = []
    for i, op in enumerate(scenario()):
        for _ in range(100):  # bounded: a policy that keeps saying "now" must fail, not hang
            if (when := p.next_due(op.at)) is None or when > op.at:
                break
            out += p.due(when)
        if i in restarts:
            p._conn.close()
            p = policy(db, **cfg)
        if op.transition is not None:
            p.on_transition(op.transition, op.diagnosis, op.at)
        elif op.incident_id and op.diagnosis is not None:
            p.on_diagnosis(op.incident_id, op.diagnosis, op.at)
        out += p.due(op.at)
    p._conn.close()
    return project(out)


def test_the_scenario_uninterrupted(tmp_path: Path) -> None:
    """The restart tests' reference run (max_per_hour 6, group_wait 10s, repeat_every 30m).

    a and b open together (one OPENED, b related; c is a blip: nothing). Two material diagnosis changes
    make two UPDATEs (each restarts a's reminder clock), b gets its reminder and its RESOLVED: 5 in the
    hour, plus one slot kept for a's RESOLVED, so the four burst incidents and a's 12:56 reminder are
    held back; the summary goes at 12:00:10 + 1h when the OPENED leaves the hour. From then on the
    burst incidents' reminders compete for the cap and further summaries count what they lose; a's
    RESOLVED goes at once when a resolves at 14:00, its slot kept all along.
    """
    got = run(tmp_path / "s.db", frozenset())
    c = AlertKind
    assert [(at.time().isoformat(), kind, held) for _, kind, at, _, _, _, held, _ in got] == [
        ("12:00:10", c.OPENED, 0), ("12:25:00", c.UPDATE, 0), ("12:26:00", c.UPDATE, 0),
        ("12:30:10", c.REMINDER, 0), ("12:40:00", c.RESOLVED, 0), ("13:00:10", c.HELD_BACK, 5),
        ("13:25:00", c.HELD_BACK, 3), ("13:26:00", c.REMINDER, 0), ("13:50:11", c.REMINDER, 0),
        ("14:00:00", c.RESOLVED, 0), ("14:00:10", c.HELD_BACK, 3), ("14:25:00", c.HELD_BACK, 3),
        ("14:50:11", c.REMINDER, 0), ("14:50:12", c.REMINDER, 0),
    ]
    assert len(got[0][7]) == 1  # b rides in a's OPENED
    assert got[2][5] == "auth-placement" and got[9][4] == 900
    assert len({x[0] for x in got}) == len(got)  # every id distinct
    for start in (x[2] for x in got):
        assert sum(start <= x[2] < start + H for x in got) <= 6  # the cap holds in every hour


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.frozensets(st.integers(min_value=0, max_value=len(scenario()) - 1), max_size=4))
def test_restarts_neither_repeat_nor_forget(tmp_path_factory: pytest.TempPathFactory,
                                            restarts: frozenset[int]) -> None:
    base = tmp_path_factory.mktemp("base")
    expected = run(base / "s.db", frozenset())
    assert run(tmp_path_factory.mktemp("restarted") / "s.db", restarts) == expected


# -- the flood ----------------------------------------------------------------------------------------


def flapping_hour(source: str) -> list[Exchange]:
    """Five healthy minutes, then sixty one-minute cycles: a 5-second 401 blip, a 20-second 401 streak."""
    out = [Exchange(Response(T0 - 5 * M + s * S, "PURCHASE", 200), None, source) for s in range(0, 300, 2)]
    for k in range(60):
        base = T0 + k * M
        statuses = [(s, 401) for s in range(5)] + [(s, 200) for s in range(5, 20)]
        statuses += [(s, 401) for s in range(20, 41, 2)] + [(s, 200) for s in range(42, 60)]
        out += [Exchange(Response(base + s * S, "PURCHASE", code), None, source) for s, code in statuses]
    return out


def test_an_hour_of_flapping_makes_21_alerts(tmp_path: Path) -> None:
    """Flapping for an hour of log time gives exactly 21 messages, with the default alert settings.

    Every minute brings two auth-failure incidents (streak 5, recovery 3). The blip opens at :04 and
    resolves at :07, before its OPENED alert is due at :14 (group_wait 10s): the first two blips are
    swallowed, and from the third on (FLAP_BLIPS within an hour) each blip is announced too, so
    flapping faster than group_wait is not silent. The streak opens at :28 and resolves at :46, so its
    OPENED (due :38) and RESOLVED go out. With max_per_hour 20 and one slot kept free for the RESOLVED
    of each announced incident, the first ten announced incidents fill the hour (10 OPENED, 10
    RESOLVED); every later OPENED is held back, blips and streaks alike: 108 (their incidents get no
    RESOLVED either). At 1:00:38 the first message leaves the sliding hour and ONE HELD_BACK alert
    says 108.
    20 + 1 = 21.
    """
    p = policy(tmp_path / "s.db", group_wait="10s")  # repeat_every 1h, max_per_hour 20, send_resolved
    detector = Detector(RulesConfig(), "app.log")
    out: list[Alert] = []
    transitions = 0
    for ex in flapping_hour("app.log"):
        while (when := p.next_due(ex.at)) is not None and when <= ex.at:
            out += p.due(when)
        for t in detector.observe(ex):
            transitions += t.kind is not TransitionKind.UPDATED
            p.on_transition(t, None, ex.at)
        out += p.due(ex.at)
    while (when := p.next_due(T0 + H)) is not None and when < T0 + 3 * H:
        out += p.due(when)
    assert transitions == 240  # 120 incidents opened and resolved
    assert kinds(out).count(AlertKind.OPENED) == 10 and kinds(out).count(AlertKind.RESOLVED) == 10
    assert out[-1].kind is AlertKind.HELD_BACK and out[-1].held_back == 108
    assert out[-1].created_at == T0 + 38 * S + H
    assert len(out) == 21
    per_hour = [x for x in out if x.created_at < T0 + H]
    assert len(per_hour) == 20


def test_flapping_faster_than_group_wait_is_announced(tmp_path: Path) -> None:
    """Blips are swallowed, but the third of one rule and source within an hour is announced."""
    p = policy(tmp_path / "s.db", group_wait="10s")
    detector = Detector(RulesConfig(), "app.log")
    out: list[Alert] = []
    start = T0
    for cycle in range(4):  # 6 s of 401, then 4 s of 200: every incident is over before group_wait
        for i in range(10):
            at = start + (cycle * 10 + i) * S
            status = 401 if i < 6 else 200
            for t in detector.observe(Exchange(Response(at, "PURCHASE", status), None, "app.log")):
                p.on_transition(t, None, at)
            out += p.due(at)
    out += p.due(start + 60 * S)
    assert [a.kind for a in out][:2] == [AlertKind.OPENED, AlertKind.RESOLVED]
    assert out[0].incident is not None and out[0].incident.opened_at == start + 20 * S  # the third blip
    # Each announced blip says how many blips of its rule and source the hour saw, itself and the announced
    # ones included; nothing else is marked as flapping.
    assert kinds(out) == [AlertKind.OPENED, AlertKind.RESOLVED] * 2
    assert [a.flaps for a in out] == [3, 0, 4, 0]


def test_a_store_without_the_flaps_column_gains_it(tmp_path: Path) -> None:
    """A state database from before blips were counted opens, keeps its rows, and counts from then on."""
    p = policy(tmp_path / "s.db")
    a = incident(Rule.AUTH_FAILURES, "app.log", T0)
    p.on_transition(opened(a), None, T0)
    conn = sqlite3.connect(tmp_path / "s.db")
    conn.execute("ALTER TABLE alert_state DROP COLUMN flaps")
    conn.execute("PRAGMA user_version=1")  # as a file from before the store owned the alert tables
    conn.commit()
    conn.close()
    again = policy(tmp_path / "s.db")
    [alert] = again.due(T0 + 10 * S)
    assert alert.kind is AlertKind.OPENED and alert.incident == a and alert.flaps == 0


# -- inhibition: one problem, one message --------------------------------------------------------------------


def test_inhibition_folds_the_error_rate_into_the_streak_that_explains_it(tmp_path: Path) -> None:
    p = policy(tmp_path / "s.db", group_wait="10s")
    auth = incident(Rule.AUTH_FAILURES, "app.log", T0)
    rate = incident(Rule.ERROR_RATE, "app.log", T0 + 20 * S, responses=20)
    elsewhere = incident(Rule.ERROR_RATE, "other.log", T0 + 20 * S)
    p.on_transition(opened(auth), diagnosis(FindingCode.TOKEN_REVOKED), T0)
    [first] = p.due(T0 + 10 * S)
    assert first.incident == auth and first.folded == ()
    p.on_transition(opened(rate), diagnosis(FindingCode.TOKEN_REVOKED), T0 + 20 * S)
    p.on_transition(opened(elsewhere), None, T0 + 20 * S)
    p.on_transition(updated(rate, 30, T0 + 25 * S), None, T0 + 25 * S)
    [other] = p.due(T0 + 30 * S)  # the error rate on app.log is explained there, and never announced
    assert other.incident == elsewhere
    assert p.due(T0 + H + 10 * S)[0].kind is AlertKind.REMINDER
    # Its count, as it stands, is shown in the alerts of the incident that explains it.
    [reminder] = [a for a in p.due(T0 + 2 * H + 10 * S) if a.incident == auth]
    assert [(f.rule, f.responses) for f in reminder.folded] == [(Rule.ERROR_RATE, 30)]
    # One recovery ends both: one RESOLVED, for the incident that was announced.
    p.on_transition(resolved(auth, T0 + 3 * H), None, T0 + 3 * H)
    p.on_transition(resolved(rate, T0 + 3 * H), None, T0 + 3 * H)
    assert p.next_due(T0 + 3 * H) == T0 + 3 * H
    ended = p.due(T0 + 3 * H)
    assert [(a.kind, a.incident.rule if a.incident else None) for a in ended] == [
        (AlertKind.RESOLVED, Rule.AUTH_FAILURES)]
    assert [f.rule for f in ended[0].folded] == [Rule.ERROR_RATE]
    assert {a.incident.id for a in p.due(T0 + 4 * H) if a.incident} == {elsewhere.id}  # only other.log is left


def test_inhibition_within_group_wait_and_across_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    p = policy(db, group_wait="10s")
    auth = incident(Rule.AUTH_FAILURES, "app.log", T0)
    rate = incident(Rule.ERROR_RATE, "app.log", T0 + 2 * S)
    p.on_transition(opened(rate), None, T0 + 2 * S)  # the window rule opens first, the streak right after
    p.on_transition(opened(auth), None, T0 + 3 * S)
    p._conn.close()
    p = policy(db, group_wait="10s")
    [only] = p.due(T0 + 12 * S)
    assert only.incident == auth and only.related == () and [f.id for f in only.folded] == [rate.id]
    p._conn.close()


def test_an_error_rate_that_outlives_what_explained_it_is_announced_then(tmp_path: Path) -> None:
    p = policy(tmp_path / "s.db", group_wait="10s")
    auth = incident(Rule.AUTH_FAILURES, "app.log", T0)
    rate = incident(Rule.ERROR_RATE, "app.log", T0 + S)
    p.on_transition(opened(auth), None, T0)
    p.on_transition(opened(rate), None, T0 + S)
    assert [a.incident for a in p.due(T0 + 11 * S)] == [auth]
    p.on_transition(resolved(auth, T0 + M), None, T0 + M)
    assert p.next_due(T0 + M) == T0 + M  # still failing, now unexplained: its own OPENED is owed at once
    got = p.due(T0 + M)
    assert [(a.kind, a.incident.id if a.incident else None) for a in got] == [
        (AlertKind.OPENED, rate.id), (AlertKind.RESOLVED, auth.id)]
    p.on_transition(resolved(rate, T0 + 2 * M), None, T0 + 2 * M)
    assert [a.kind for a in p.due(T0 + 2 * M)] == [AlertKind.RESOLVED]


def test_without_inhibit_rules_every_incident_speaks_for_itself(tmp_path: Path) -> None:
    p = policy(tmp_path / "s.db", group_wait="10s", inhibit_rules=[])
    auth = incident(Rule.AUTH_FAILURES, "app.log", T0)
    rate = incident(Rule.ERROR_RATE, "app.log", T0 + 20 * S)
    p.on_transition(opened(auth), None, T0)
    p.on_transition(opened(rate), None, T0 + 20 * S)
    assert [a.incident for a in p.due(T0 + 10 * S)] == [auth]
    assert [a.incident for a in p.due(T0 + 30 * S)] == [rate]


def test_inhibit_rules_are_configured_like_alertmanagers(tmp_path: Path) -> None:
    p = policy(tmp_path / "s.db", group_wait="10s",
               inhibit_rules=[{"source_rules": ["server-errors"], "target_rules": ["error-rate"], "equal": []}])
    fivexx = incident(Rule.SERVER_ERRORS, "one.log", T0)
    rate = incident(Rule.ERROR_RATE, "two.log", T0 + S)  # another file: equal [] inhibits across files
    auth = incident(Rule.AUTH_FAILURES, "two.log", T0 + 2 * S)
    for inc in (fivexx, rate, auth):
        p.on_transition(opened(inc), None, inc.opened_at)
    got = p.due(T0 + 20 * S)
    assert sorted(a.incident.rule.value for a in got if a.incident) == ["auth-failures", "server-errors"]
    with pytest.raises(ValueError, match="cannot inhibit itself"):
        validated(AlertsConfig, {"inhibit_rules": [{"source_rules": ["error-rate"],
                                                         "target_rules": ["error-rate"]}]})
