"""History: per-token, per-pixel answers, accepted-request runs, snapshot/restore and merge."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from snapwatch.detect.history import History
from snapwatch.model import Api, Exchange, Placement, Response
from tests.helpers.exchanges import exchange

T0 = datetime(2025, 12, 3, 23, 0, tzinfo=UTC)
PIX, PIX2 = "pixel-one", "pixel-two"


def ex(minute: float, status: int, fp: str | None = "aaaaaaaaaaaa", pixel: str | None = PIX,
       placement: Placement = Placement.QUERY, api: Api = Api.V3) -> Exchange:
    at = T0 + timedelta(minutes=minute)
    return exchange(at, status, pixel=pixel, fp=fp, api=api, placement=placement, token_kind=None)


def test_counts_per_token_and_pixel() -> None:
    h = History()
    h.observe_all([ex(0, 200), ex(1, 200), ex(2, 401), ex(3, 403), ex(4, 429), ex(5, 200, pixel=PIX2)])
    u = h.usage("aaaaaaaaaaaa", PIX)
    assert u is not None
    assert (u.accepted, u.rejected) == (2, 2)
    assert u.first_seen == T0 and u.last_seen == T0 + timedelta(minutes=4)
    assert u.first_accepted == T0 and u.last_accepted == T0 + timedelta(minutes=1)
    other = h.usage("aaaaaaaaaaaa", PIX2)
    assert other is not None and other.accepted == 1
    assert h.usage("bbbbbbbbbbbb", PIX) is None


def test_accepted_before_is_judged_at_the_given_time() -> None:
    h = History()
    h.observe_all([ex(0, 401), ex(10, 200)])
    assert h.accepted_before("aaaaaaaaaaaa", PIX, T0 + timedelta(minutes=5)) is None
    assert h.accepted_before("aaaaaaaaaaaa", PIX, T0 + timedelta(minutes=11)) is not None


def test_last_accepted_run_before_a_streak_shows_what_changed() -> None:
    h = History()
    h.observe_all([ex(i, 200) for i in range(5)])
    h.observe_all([ex(5 + i, 401, placement=Placement.NONE, fp=None) for i in range(3)])
    h.observe_all([ex(10, 200, fp="bbbbbbbbbbbb")])
    run = h.last_accepted(T0 + timedelta(minutes=5))
    assert run is not None
    assert run.count == 5 and run.attrs.placement is Placement.QUERY and run.attrs.token_fp == "aaaaaaaaaaaa"
    latest = h.last_accepted()
    assert latest is not None and latest.attrs.token_fp == "bbbbbbbbbbbb"
    assert len(h.accepted_runs()) == 2


def test_runs_are_bounded() -> None:
    h = History(max_runs=4)
    h.observe_all([ex(i, 200, pixel=f"p{i}") for i in range(10)])
    runs = h.accepted_runs()
    assert [r.attrs.pixel for r in runs] == ["p6", "p7", "p8", "p9"]


def test_unpaired_and_statusless_exchanges_are_counted_not_lost() -> None:
    h = History()
    h.observe(Exchange(Response(T0, "X", 200), None))
    h.observe(Exchange(Response(T0, "X", None), ex(0, 200).request))
    assert h.unpaired == 1
    u = h.usage("aaaaaaaaaaaa", PIX)
    assert u is not None and u.accepted == 0 and u.last_seen == T0


def test_tokens_sent_now_and_last_request() -> None:
    h = History()
    h.observe_all([ex(0, 200), ex(5, 401, fp="bbbbbbbbbbbb"), ex(6, 401, fp="cccccccccccc")])
    assert h.tokens_since(T0 + timedelta(minutes=4)) == ["cccccccccccc", "bbbbbbbbbbbb"]
    assert h.last_request is not None and h.last_request.token_fp == "cccccccccccc"
    assert h.last_status == 401


def test_snapshot_round_trips_through_json() -> None:
    h = History()
    v2 = ex(3, 200, api=Api.V2, pixel=None, fp=None, placement=Placement.UNKNOWN)
    h.observe_all([ex(0, 200), ex(1, 200), ex(2, 401, placement=Placement.NONE), v2])
    data = json.loads(json.dumps(h.snapshot()))
    back = History.restore(data)
    assert list(back.usages()) == list(h.usages())
    assert back.accepted_runs() == h.accepted_runs()
    assert back.last_request == h.last_request and back.last_status == h.last_status
    back.observe(ex(4, 200, api=Api.V2, pixel=None, fp=None, placement=Placement.UNKNOWN))
    assert back.accepted_runs()[-1].count == 2  # the restored run goes on


def test_restore_rejects_a_damaged_snapshot_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="version"):
        History.restore({"version": 99})
    with pytest.raises(ValueError, match="damaged"):
        History.restore({"version": 1, "usage": [["x"]], "runs": []})


def test_merge_adds_counts_and_interleaves_runs() -> None:
    a, b = History(), History()
    a.observe_all([ex(0, 200), ex(1, 401)])
    b.observe_all([ex(5, 200, pixel=PIX2), ex(6, 200)])
    a.merge(b)
    u = a.usage("aaaaaaaaaaaa", PIX)
    assert u is not None and (u.accepted, u.rejected) == (2, 1)
    assert u.last_accepted == T0 + timedelta(minutes=6)
    assert [r.attrs.pixel for r in a.accepted_runs()] == [PIX, PIX2, PIX]
    assert a.last_request is not None and a.last_request.at == T0 + timedelta(minutes=6)


def test_the_2xx_path_is_cheap() -> None:
    exchanges = [ex(i / 1000, 200) for i in range(100_000)]
    h = History()
    start = time.perf_counter()
    h.observe_all(exchanges)
    elapsed = time.perf_counter() - start
    u = h.usage("aaaaaaaaaaaa", PIX)
    assert u is not None and u.accepted == 100_000
    # Tens of thousands per second is the need; well over a million per second is typical.
    assert elapsed < 1.0, f"{len(exchanges) / elapsed:.0f} exchanges/s"

