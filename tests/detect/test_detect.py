"""The detector: each rule opens and resolves at the exact exchange, and its state survives a restart."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from snapwatch.config import RulesConfig, StreakRule, validated
from snapwatch.detect.detector import Detector, incident_id
from snapwatch.errors import SnapwatchError
from snapwatch.ingest.tokens import fingerprint
from snapwatch.model import Exchange, Rule, Transition, TransitionKind
from tests.helpers.exchanges import exchange
from tests.helpers.tokens import assert_no_secret, make_canvas_token

T0 = datetime(2025, 12, 3, 23, 0, 0, tzinfo=UTC)
OPENED, UPDATED, RESOLVED = TransitionKind.OPENED, TransitionKind.UPDATED, TransitionKind.RESOLVED
OFF = {"enabled": False}
ONLY_NONE: dict[str, Any] = {
    "auth_failures": OFF,
    "rate_limited": OFF,
    "server_errors": OFF,
    "invalid_events": OFF,
    "error_rate": OFF,
    "silence": OFF,
}


def rules(**overrides: Any) -> RulesConfig:
    """Every rule off except the ones given (as config dicts, durations as strings)."""
    return validated(RulesConfig, {**ONLY_NONE, **overrides})


def ex(status: int | None, t: float, fp: str = "3f9a1c0b7d2e", tz: timezone = UTC) -> Exchange:
    at = (T0 + timedelta(seconds=t)).astimezone(tz)
    return exchange(at, status, '{"status":"FAILED"}', pixel="px1", fp=fp, source="app.log")


def feed(det: Detector, items: list[tuple[int | None, float]]) -> list[list[Transition]]:
    """The transitions of each exchange, one list per exchange."""
    return [det.observe(ex(s, t)) for s, t in items]


def kinds(steps: list[list[Transition]]) -> list[tuple[int, TransitionKind, Rule]]:
    return [(i, tr.kind, tr.incident.rule) for i, step in enumerate(steps) for tr in step]


def at(t: float) -> datetime:
    return T0 + timedelta(seconds=t)


# -- streak rules -------------------------------------------------------------------------------


def test_auth_failures_open_at_the_fifth_and_resolve_at_the_third_success() -> None:
    det = Detector(rules(auth_failures={}), "app.log")
    statuses = [401, 401, 403, 401, 401, 200, 401, 200, 200, 200, 200]
    steps = feed(det, [(s, i) for i, s in enumerate(statuses)])
    assert kinds(steps) == [
        (4, OPENED, Rule.AUTH_FAILURES),
        (6, UPDATED, Rule.AUTH_FAILURES),
        (9, RESOLVED, Rule.AUTH_FAILURES),
    ]
    opened = steps[4][0].incident
    assert opened.opened_at == at(0)  # the first failure of the streak, not the fifth
    assert opened.first_failure == ex(401, 0)
    assert (opened.responses, opened.by_status) == (5, (("401", 4), ("403", 1)))
    expected_id = hashlib.sha256(f"auth-failures|app.log|{at(0).isoformat()}|1".encode()).hexdigest()[:16]
    assert opened.id == expected_id == incident_id(Rule.AUTH_FAILURES, "app.log", at(0), 1)
    resolved = steps[9][0].incident
    assert resolved.id == opened.id
    assert (resolved.resolved_at, resolved.last_at, resolved.responses) == (at(9), at(9), 6)
    assert resolved.by_status == (("401", 5), ("403", 1))
    assert det.open_incidents() == []


def test_thresholds_come_from_the_config() -> None:
    det = Detector(rules(auth_failures={"streak": 2, "recovery": 1}), "s")
    assert kinds(feed(det, [(401, 0), (401, 1), (200, 2)])) == [
        (1, OPENED, Rule.AUTH_FAILURES),
        (2, RESOLVED, Rule.AUTH_FAILURES),
    ]


def test_a_success_resets_a_streak_in_progress() -> None:
    det = Detector(rules(auth_failures={}), "s")
    items = [(401, i) for i in range(4)] + [(200, 4)] + [(401, 5 + i) for i in range(4)]
    assert kinds(feed(det, items)) == []
    assert kinds(feed(det, [(401, 9)])) == [(0, OPENED, Rule.AUTH_FAILURES)]
    assert det.open_incidents()[0].opened_at == at(5)


def test_other_errors_neither_extend_nor_break_a_streak() -> None:
    det = Detector(rules(auth_failures={}, server_errors={}, rate_limited={}), "s")
    statuses = [401, 401, 500, 429, None, 404, 401, 401, 401]
    steps = feed(det, [(s, i) for i, s in enumerate(statuses)])
    assert kinds(steps) == [(8, OPENED, Rule.AUTH_FAILURES)]
    assert steps[8][0].incident.by_status == (("401", 5),)


def test_rate_limited_and_server_errors_streaks() -> None:
    det = Detector(rules(rate_limited={"streak": 3}, server_errors={"streak": 2, "recovery": 2}), "s")
    statuses = [429, 502, 429, 503, 429, 200, 200, 200]
    steps = feed(det, [(s, i) for i, s in enumerate(statuses)])
    assert kinds(steps) == [
        (3, OPENED, Rule.SERVER_ERRORS),
        (4, OPENED, Rule.RATE_LIMITED),
        (6, RESOLVED, Rule.SERVER_ERRORS),  # its own recovery of 2
        (7, RESOLVED, Rule.RATE_LIMITED),  # the default recovery of 3
    ]
    assert steps[3][0].incident.by_status == (("502", 1), ("503", 1))
    assert steps[4][0].incident.opened_at == at(0)


def test_any_failure_breaks_the_recovery_run() -> None:
    det = Detector(rules(auth_failures={"streak": 1, "recovery": 2}), "s")
    steps = feed(det, [(401, 0), (200, 1), (500, 2), (200, 3), (200, 4)])
    assert kinds(steps) == [(0, OPENED, Rule.AUTH_FAILURES), (4, RESOLVED, Rule.AUTH_FAILURES)]
    assert steps[4][0].incident.responses == 1  # the 500 broke the run but is not an auth failure


def test_disabled_rules_never_fire() -> None:
    det = Detector(rules(), "s")
    statuses = [401, 403, 429, 500, 400, None] * 40
    assert kinds(feed(det, [(s, i) for i, s in enumerate(statuses)])) == []
    assert det.tick(at(10**6)) == []
    assert det.open_incidents() == []


def test_flapping_gives_one_incident_per_streak() -> None:
    det = Detector(rules(auth_failures={}), "s")
    items: list[tuple[int | None, float]] = []
    for n in range(10):
        items += [(401, n * 10 + i) for i in range(5)] + [(200, n * 10 + 5 + i) for i in range(3)]
    steps = feed(det, items)
    opened = [tr.incident for step in steps for tr in step if tr.kind is OPENED]
    resolved = [tr.incident for step in steps for tr in step if tr.kind is RESOLVED]
    assert len(opened) == len(resolved) == 10
    assert len({i.id for i in opened}) == 10
    # while open, short runs of successes never resolve and never open a second incident
    det = Detector(rules(auth_failures={}), "s")
    items = [(401, i) for i in range(5)] + [(s, 5 + i) for i, s in enumerate([200, 200, 401] * 30)]
    steps = feed(det, items)
    assert [k for _, k, _ in kinds(steps)] == [OPENED] + [UPDATED] * 30
    assert det.open_incidents()[0].responses == 35


def test_updates_can_be_left_out_without_losing_counts() -> None:
    det = Detector(rules(auth_failures={"streak": 2}), "s", emit_updates=False)
    steps = feed(det, [(401, i) for i in range(50)] + [(200, 50 + i) for i in range(3)])
    assert kinds(steps) == [(1, OPENED, Rule.AUTH_FAILURES), (52, RESOLVED, Rule.AUTH_FAILURES)]
    assert steps[52][0].incident.responses == 50


def test_failures_sharing_a_timestamp_give_one_update() -> None:
    det = Detector(rules(auth_failures={"streak": 2}), "s")
    steps = feed(det, [(401, 0), (401, 1), (401, 1), (401, 2), (401, 2), (401, 2), (401, 3)])
    assert kinds(steps) == [
        (1, OPENED, Rule.AUTH_FAILURES),
        (3, UPDATED, Rule.AUTH_FAILURES),
        (6, UPDATED, Rule.AUTH_FAILURES),
    ]
    assert steps[6][0].incident.responses == det.open_incidents()[0].responses == 7


# -- window rules -------------------------------------------------------------------------------


def test_invalid_events_count_within_the_window() -> None:
    det = Detector(rules(invalid_events={"count": 3, "window": "60s", "recovery": 2}), "s")
    items = [(400, 0), (200, 10), (400, 30), (200, 50), (400, 70), (400, 80), (400, 81), (200, 82), (200, 83)]
    steps = feed(det, items)
    # at t=70 the 400 of t=0 has left the window: only two remain
    assert kinds(steps) == [
        (5, OPENED, Rule.INVALID_EVENTS),
        (6, UPDATED, Rule.INVALID_EVENTS),
        (8, RESOLVED, Rule.INVALID_EVENTS),
    ]
    opened = steps[5][0].incident
    assert (opened.opened_at, opened.responses, opened.by_status) == (at(30), 3, (("400", 3),))
    assert opened.first_failure == ex(400, 30)
    # the window starts empty after resolution: two more 400s do not reopen
    assert kinds(feed(det, [(400, 84), (400, 85)])) == []
    assert kinds(feed(det, [(400, 86)])) == [(0, OPENED, Rule.INVALID_EVENTS)]


def test_error_rate_opens_on_the_failure_that_reaches_the_threshold() -> None:
    det = Detector(rules(error_rate={"threshold": 0.5, "window": "60s", "min_responses": 4}), "s")
    steps = feed(det, [(200, 0), (404, 1), (None, 2), (200, 3), (200, 4), (500, 5), (200, 6), (200, 7), (200, 8)])
    # 3 failures of 6 responses at t=5; at t=2 the share was 2/3 but only 3 responses were in
    assert kinds(steps) == [(5, OPENED, Rule.ERROR_RATE), (8, RESOLVED, Rule.ERROR_RATE)]
    opened = steps[5][0].incident
    assert (opened.opened_at, opened.first_failure) == (at(1), ex(404, 1))
    assert opened.by_status == (("404", 1), ("500", 1), ("none", 1))


def test_error_rate_is_judged_only_on_failures() -> None:
    det = Detector(rules(error_rate={"threshold": 0.5, "window": "60s", "min_responses": 4}), "s")
    assert kinds(feed(det, [(500, 0), (500, 1), (500, 2), (200, 3)])) == []
    assert kinds(feed(det, [(500, 4)])) == [(0, OPENED, Rule.ERROR_RATE)]


def test_error_rate_window_expires() -> None:
    det = Detector(rules(error_rate={"threshold": 0.5, "window": "60s", "min_responses": 3}), "s")
    steps = feed(det, [(404, 0), (404, 0), (200, 100), (200, 100), (404, 102)])
    assert kinds(steps) == []  # 1 failure in 3, the two old 404s expired
    steps = feed(det, [(404, 103)])
    assert kinds(steps) == [(0, OPENED, Rule.ERROR_RATE)]
    assert steps[0][0].incident.opened_at == at(102)


def test_threshold_share_is_exact() -> None:
    det = Detector(rules(error_rate={"threshold": 0.3, "window": "1h", "min_responses": 10}), "s")
    steps = feed(det, [(200, i) for i in range(7)] + [(500, 7), (500, 8), (500, 9)])
    assert kinds(steps) == [(9, OPENED, Rule.ERROR_RATE)]  # 3/10 reaches 0.3 despite float rounding


# -- silence ------------------------------------------------------------------------------------


def test_silence_via_tick() -> None:
    det = Detector(rules(silence={"enabled": True, "after": "10m"}), "s")
    assert det.observe(ex(200, 0)) == []
    assert det.tick(at(600)) == []  # exactly the quiet period is not longer than it
    opened = det.tick(at(601))
    assert [t.kind for t in opened] == [OPENED]
    assert (opened[0].incident.opened_at, opened[0].incident.responses) == (at(600), 0)
    assert det.tick(at(900)) == []
    resolved = det.observe(ex(200, 1200))
    assert [t.kind for t in resolved] == [RESOLVED]
    assert resolved[0].incident.id == opened[0].incident.id
    assert resolved[0].incident.resolved_at == at(1200)


def test_silence_via_a_gap_in_the_records() -> None:
    det = Detector(rules(silence={"enabled": True, "after": "10m"}), "s")
    steps = feed(det, [(200, 0), (200, 600), (401, 1500)])
    assert kinds(steps) == [(2, OPENED, Rule.SILENCE), (2, RESOLVED, Rule.SILENCE)]
    assert steps[2][0].incident.opened_at == at(1200)
    assert steps[2][1].incident.resolved_at == at(1500)


def test_silence_before_the_first_record_counts_from_since() -> None:
    det = Detector(rules(silence={"enabled": True, "after": "10m"}), "s", since=at(0))
    assert [t.kind for t in det.tick(at(601))] == [OPENED]
    assert Detector(rules(silence={"enabled": True}), "s").tick(at(10**6)) == []


def test_an_older_record_counts_but_time_is_measured_from_the_newest() -> None:
    det = Detector(rules(auth_failures={"streak": 3}, silence={"enabled": True, "after": "10m"}), "s")
    steps = feed(det, [(401, 0), (401, 300), (401, 100)])
    assert kinds(steps) == [(2, OPENED, Rule.AUTH_FAILURES)]
    assert det.tick(at(850)) == []
    assert [t.incident.opened_at for t in det.tick(at(901))] == [at(900)]


# -- persistence --------------------------------------------------------------------------------


def roundtrip(det: Detector) -> Detector:
    data = json.loads(json.dumps(det.snapshot()))
    return Detector.restore(det.rules, det.source, data)


def test_snapshot_keeps_streaks_and_open_incidents_and_no_token() -> None:
    token = make_canvas_token(seed="q")
    config = rules(auth_failures={}, rate_limited={}, invalid_events={"count": 3}, error_rate={})
    det = Detector(config, "app.log")
    for i, s in enumerate([401] * 5 + [429] * 3 + [400] * 2 + [200]):
        det.observe(ex(s, i, fp=fingerprint(token)))
    text = json.dumps(det.snapshot())
    assert_no_secret(text, token)
    again = roundtrip(det)
    assert again.open_incidents() == det.open_incidents() != []
    assert again.snapshot() == det.snapshot()
    items = [(429, 20), (429, 21), (429, 22), (401, 23), (400, 24)]
    assert feed(again, items) == feed(det, items)


def test_unreadable_state_is_one_clear_error() -> None:
    for bad in ({}, {"version": 1}, {"version": 99}, {"version": 1, "last_at": "yesterday"}):
        with pytest.raises(SnapwatchError, match="detector state for s is unreadable") as err:
            Detector.restore(rules(), "s", bad)
        assert "\n" not in str(err.value)


STATUSES = [200, 200, 200, 204, 400, 401, 403, 404, 429, 500, 503, None]
step_st = st.tuples(
    st.sampled_from(["obs", "obs", "obs", "obs", "tick"]),
    st.sampled_from(STATUSES),
    st.sampled_from([0, 0, 1, 2, 5, 30, 90, 400]),
    st.booleans(),  # restore from a snapshot after this step
)
config_st = st.builds(
    lambda s, r, c, w, th, m, sil: rules(
        auth_failures={"streak": s, "recovery": r},
        rate_limited={"streak": s + 1, "recovery": r},
        server_errors={"streak": s, "recovery": r + 1},
        invalid_events={"count": c, "window": w, "recovery": r},
        error_rate={"threshold": th, "window": w, "min_responses": m, "recovery": r},
        silence={"enabled": sil, "after": "3m"},
    ),
    st.integers(1, 4),
    st.integers(1, 3),
    st.integers(1, 4),
    st.sampled_from([0, 10, 60, 300]),
    st.sampled_from([0.2, 0.3, 0.5, 1.0]),
    st.integers(1, 6),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(
    config=config_st,
    steps=st.lists(step_st, min_size=10, max_size=120),
    tz=st.sampled_from([UTC, timezone(timedelta(hours=2))]),
)
def test_snapshot_restore_anywhere_changes_nothing(
    config: RulesConfig, steps: list[tuple[str, int | None, int, bool]], tz: timezone
) -> None:
    plain = Detector(config, "src", since=T0)
    resumed = Detector(config, "src", since=T0)
    seen: list[Transition] = []
    t = 0
    for op, status, gap, restart in steps:
        t += gap
        if op == "obs":
            got, want = resumed.observe(ex(status, t, tz=tz)), plain.observe(ex(status, t, tz=tz))
        else:
            got, want = resumed.tick(at(t)), plain.tick(at(t))
        assert got == want
        seen += want
        if restart:
            resumed = roundtrip(resumed)
        assert resumed.open_incidents() == plain.open_incidents()
    assert resumed.snapshot() == plain.snapshot()
    event(f"transitions: {min(len(seen), 9)}")


def test_two_incidents_opening_in_the_same_second_get_different_ids() -> None:
    """Logs stamp whole seconds: a second streak in the same second is a new incident, not a replay."""
    det = Detector(RulesConfig(auth_failures=StreakRule(streak=2, recovery=1)), "app.log")
    opened = []
    for status in (401, 401, 200, 401, 401):
        opened += [t.incident.id for t in det.observe(ex(status, 0)) if t.kind is OPENED]
    assert len(opened) == 2 and opened[0] != opened[1]


def test_a_recovery_starts_at_the_first_2xx_after_the_last_failure() -> None:
    det = Detector(rules(auth_failures={"streak": 3, "recovery": 3}), "app.log")
    feed(det, [(200, 0), (401, 1), (401, 2), (401, 3), (200, 4), (401, 5), (200, 6), (200, 7)])
    assert det.recovering_since == at(6)  # the 2xx at 4s was broken by the 401 at 5s
    restored = Detector.restore(det.rules, "app.log", json.loads(json.dumps(det.snapshot())))
    [resolved] = restored.observe(ex(200, 8))
    assert resolved.kind is RESOLVED and restored.recovering_since == at(6)
