"""A source's memory saved by its changes: the error-rate window and the accepted runs as rows of their own.

Checked against a real state file: after any sequence of exchanges and commits, what the store gives back
is the detector's and the history's whole snapshot; a commit writes the rows that changed, so its cost does
not grow with the window; a memory saved whole by an older snapshot version still restores.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from snapwatch.codec import exchange_json
from snapwatch.config import RulesConfig, SourceConfig, validated
from snapwatch.detect.history import History
from snapwatch.detect.pipeline import SourcePipeline
from snapwatch.detect.rows import UNSAVED, Mark, changes_since
from snapwatch.model import Exchange
from snapwatch.run.followed import FollowedFile
from snapwatch.store.state import Store
from tests.helpers.exchanges import exchange

T0 = datetime(2025, 12, 3, 23, 0, 0, tzinfo=UTC)
PATH = "/var/log/app.log"
# The window rule on, with a threshold no test reaches unless it means to: buckets pile up over the window.
RULES: dict[str, Any] = {"error_rate": {"window": "5m", "threshold": 0.9, "min_responses": 10}}


def followed(rules: dict[str, Any] | None = None) -> FollowedFile:
    config = validated(RulesConfig, rules or RULES)
    return FollowedFile(SourcePipeline(SourceConfig(path=PATH), config, label=PATH))


def feed(f: FollowedFile, status: int, second: float, fp: str = "3f9a1c0b7d2e", pixel: str = "px1") -> None:
    ex: Exchange = exchange(T0 + timedelta(seconds=second), status, '{"status":"FAILED"}', pixel=pixel, fp=fp,
                            source=PATH)
    f.pipeline.history.observe(ex)
    f.pipeline.detector.observe(ex)


def saved(store: Store) -> tuple[dict[str, Any], dict[str, Any]]:
    memory = store.source_memory(PATH)
    assert memory is not None
    return memory["detector"], memory["history"]


def changes_of_commit(store: Store, f: FollowedFile) -> int:
    """Rows the commit inserted, replaced or deleted (every table)."""
    before = store.conn.total_changes
    f.commit(store, {})
    return store.conn.total_changes - before


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([200, 200, 200, 204, 401, 500, 503]),
                          st.sampled_from([0, 0, 1, 3, 40, 200, 400]),
                          st.sampled_from(["fp-a", "fp-a", "fp-b"]),
                          st.booleans(),  # commit after this exchange
                          st.booleans()),  # restart from the state file after committing
                min_size=1, max_size=120))
def test_the_store_gives_back_the_whole_memory_after_any_exchanges_and_commits(
        steps: list[tuple[int, int, str, bool, bool]]) -> None:
    rules = {"error_rate": {"window": "5m", "threshold": 0.5, "min_responses": 6}}
    with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp)) as store:
        f = followed(rules)
        second = 0
        for status, step, fp, commit, restart in steps:
            second += step
            feed(f, status, second, fp)
            if commit or restart:
                f.commit(store, {})
                detector, history = saved(store)
                assert detector == json.loads(json.dumps(f.pipeline.detector.snapshot()))
                assert history == json.loads(json.dumps(f.pipeline.history.snapshot()))
            if restart:
                f = FollowedFile.restored(SourceConfig(path=PATH), PATH, validated(RulesConfig, rules),
                                          store.source_memory(PATH))
        f.commit(store, {})
        detector, history = saved(store)
        assert detector == json.loads(json.dumps(f.pipeline.detector.snapshot()))
        assert history == json.loads(json.dumps(f.pipeline.history.snapshot()))


def test_a_commit_writes_what_changed_not_the_whole_window(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        f = followed()
        for second in range(290):  # one failure in four: a bucket per second, none of them all 2xx
            feed(f, 500 if second % 4 == 0 else 200, second)
        first = changes_of_commit(store, f)
        assert store.conn.execute("SELECT count(*) FROM memory_rows WHERE part='detector/error_window/rows'"
                                  ).fetchone()[0] == 290
        feed(f, 500, 290)  # a new bucket
        feed(f, 200, 290)
        later = changes_of_commit(store, f)
        feed(f, 200, 290)  # the same bucket grows
        same = changes_of_commit(store, f)
        # at first the source's row, the memory document, 290 window rows and the history's one run; then the
        # memory document, the one window row that is new or grew and the run (its count grew): nothing else
        assert (first, later, same) == (293, 3, 3)
        core = store.conn.execute("SELECT length(json) FROM source_memory").fetchone()[0]
        assert core < 3000, core  # the window is not in it
        assert changes_of_commit(store, f) == 0  # nothing new: nothing written
        # the window moves on: buckets older than five minutes are deleted, the rest stay
        feed(f, 200, 400)
        changes_of_commit(store, f)
        seconds = [json.loads(text)[1] for (text,) in store.conn.execute(
            "SELECT json FROM memory_rows WHERE part='detector/error_window/rows' ORDER BY seq")]
        assert seconds[0] == (T0 + timedelta(seconds=100)).isoformat()
        assert seconds[-1] == (T0 + timedelta(seconds=400)).isoformat()
        assert saved(store)[0] == f.pipeline.detector.snapshot()


def test_a_window_cleared_when_its_incident_opens_leaves_no_rows_behind(tmp_path: Path) -> None:
    rules = {"error_rate": {"window": "5m", "threshold": 0.5, "min_responses": 4}}
    with Store.open(tmp_path) as store:
        f = followed(rules)
        for second, status in enumerate([200, 200, 200, 500]):
            feed(f, status, second)
        f.commit(store, {})
        assert store.conn.execute("SELECT count(*) FROM memory_rows WHERE part LIKE 'detector/%'").fetchone()[0] == 4
        for second in (4, 5):
            feed(f, 500, second)  # opens: the window starts empty again
        assert f.pipeline.detector.open_incidents()
        f.commit(store, {})
        assert store.conn.execute("SELECT count(*) FROM memory_rows WHERE part LIKE 'detector/%'").fetchone()[0] == 0
        assert saved(store)[0] == f.pipeline.detector.snapshot()


def test_a_memory_saved_whole_by_version_1_restores_and_is_saved_as_rows_from_then_on(tmp_path: Path) -> None:
    base = T0.isoformat()
    failure = exchange_json(exchange(T0 + timedelta(seconds=2), 500, "{}", pixel="px1", fp="fp-a", source=PATH))
    detector_v1 = {"version": 1, "source": PATH, "last_at": (T0 + timedelta(seconds=2)).isoformat(), "ok_run": 0,
                   "recovering_since": None, "serial": 0, "open_ids": {}, "pending": {}, "open": {}, "invalid": [],
                   "error_window": {"base": base, "buckets": [[0, 3, None, None], [2_000_000, 1, {"500": 1}, failure]]}}
    history_v1 = {"version": 1, "unpaired": 0, "usage": [], "last_request": None, "last_status": 200,
                  "runs": [["fp-a", "px1", "v3", "/v3/px1/events", "query", base, base, 3]]}
    with Store.open(tmp_path) as store:
        store.commit_batch(None, path=PATH, source_memory={"detector": detector_v1, "history": history_v1})
        f = FollowedFile.restored(SourceConfig(path=PATH), PATH, validated(RulesConfig, RULES),
                                  store.source_memory(PATH))
        rows = f.pipeline.detector.snapshot()["error_window"]["rows"]
        assert [(r[0], r[1], r[2]) for r in rows] == [(0, base, 3), (1, (T0 + timedelta(seconds=2)).isoformat(), 1)]
        assert [r[0] for r in f.pipeline.history.snapshot()["runs"]] == [0]
        feed(f, 200, 3)
        f.commit(store, {})
        # three buckets (0 s, 2 s, the new 3 s) and two runs (the new request's token differs)
        assert store.conn.execute("SELECT count(*) FROM memory_rows").fetchone()[0] == 5
        assert saved(store) == (f.pipeline.detector.snapshot(), f.pipeline.history.snapshot())


def test_changes_since_walks_back_only_to_the_last_saved_row() -> None:
    class Item:
        def __init__(self, seq: int, count: int) -> None:
            self.seq, self.count = seq, count

    items = [Item(s, 1) for s in range(5)]
    first = changes_since(items, UNSAVED, 5, lambda i: i.count, lambda i: [i.seq, i.count])
    assert (first.rows, first.floor, first.mark) == ([[s, 1] for s in range(5)], 0, Mark(0, 4, 1))
    items[-1].count = 2
    items.append(Item(5, 1))
    grown = changes_since(items, first.mark, 6, lambda i: i.count, lambda i: [i.seq, i.count])
    assert (grown.rows, grown.floor, grown.mark) == ([[4, 2], [5, 1]], None, Mark(0, 5, 1))
    del items[:3]
    moved = changes_since(items, grown.mark, 6, lambda i: i.count, lambda i: [i.seq, i.count])
    assert (moved.rows, moved.floor) == ([], 3)
    emptied = changes_since([], moved.mark, 6, lambda i: i.count, lambda i: [i.seq, i.count])
    assert (emptied.rows, emptied.floor) == ([], 6)


def test_history_runs_are_rows_too_and_a_merge_numbers_them_again() -> None:
    h, other = History(), History()
    for i, fp in enumerate(["a", "a", "b", "a"]):
        h.observe(exchange(T0 + timedelta(seconds=2 * i), 200, pixel="px1", fp=fp))
        other.observe(exchange(T0 + timedelta(seconds=2 * i + 1), 200, pixel="px2", fp=fp))
    assert [r[0] for r in h.snapshot()["runs"]] == [0, 1, 2]
    h.merge(other)
    assert [r[0] for r in h.snapshot()["runs"]] == list(range(6))
    assert [r[0] for r in other.snapshot()["runs"]] == [0, 1, 2]  # the other history is left as it was
    assert History.restore(json.loads(json.dumps(h.snapshot()))).snapshot() == h.snapshot()


def test_rows_hold_no_token(tmp_path: Path) -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWc"
    with Store.open(tmp_path) as store:
        f = followed()
        ex = exchange(T0, 500, f'{{"error": "bad token {token}"}}', pixel="px1", fp="fp-a", source=PATH)
        f.pipeline.detector.observe(ex)
        f.commit(store, {})
        store.close()
        data = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
        assert token.encode() not in data
        assert b"bad token" in data  # the body is there, its token replaced
        assert sqlite3.connect(tmp_path / "state.db").execute("SELECT count(*) FROM memory_rows").fetchone()[0] == 1
