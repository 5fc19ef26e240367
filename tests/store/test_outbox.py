"""The durable outbox on a real SQLite file: idempotent queueing, per-target order, backoff, expiry, transactions."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest

from snapwatch.alert.messages import render
from snapwatch.codec import Message
from tests.helpers.alerts import T0, make_alert, open_outbox

# --- queueing, retries, expiry ----------------------------------------------------------------------------


def msg(alert_id: str) -> Message:
    return render(make_alert(id=alert_id))


def test_outbox_is_idempotent_ordered_and_blocks_a_queue_behind_its_head(tmp_path: Path) -> None:
    _, box = open_outbox(tmp_path / "s.db")
    targets = [("a", "A"), ("b", "B")]
    assert box.enqueue(msg("one"), targets, T0) == 2
    assert box.enqueue(msg("one"), targets, T0) == 0  # the same alert again: nothing new
    assert box.enqueue(msg("two"), targets, T0 + timedelta(seconds=1)) == 2
    due = box.due(T0 + timedelta(seconds=1))
    assert [(r.alert_id, r.target) for r in due] == [("one", "a"), ("one", "b"), ("two", "a"), ("two", "b")]
    assert due[0].message == msg("one")
    box.mark_retry(due[0], T0, "A: down")  # target a's head failed: a's whole queue waits
    box.mark_delivered(due[1], T0)
    assert [(r.alert_id, r.target) for r in box.due(T0 + timedelta(seconds=2))] == [("two", "b")]
    assert box.counts() == {"pending": 3, "delivered": 1, "failed": 0}
    assert box.target_counts() == {
        "A": {"pending": 2, "delivered": 0, "failed": 0},
        "B": {"pending": 1, "delivered": 1, "failed": 0},
    }


def test_backoff_grows_exponentially_with_bounded_jitter(tmp_path: Path) -> None:
    conn, box = open_outbox(tmp_path / "s.db", seed=7)
    box.enqueue(msg("x"), [("a", "A")], T0)
    delays = []
    now = T0
    for _ in range(10):
        row = box.due(now + timedelta(days=1))[0]
        nxt = box.mark_retry(row, now, "A: down")
        delays.append((nxt - now).total_seconds())
    for attempt, delay in enumerate(delays):
        full = min(900.0, 10.0 * 2**attempt)
        assert full / 2 <= delay <= full, (attempt, delay)
    assert delays[5] > delays[0] * 8
    assert conn.execute("SELECT attempts, last_error FROM outbox").fetchone() == (10, "A: down")


def test_expiry_marks_old_rows_failed_and_logs_them(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _, box = open_outbox(tmp_path / "s.db")
    box.enqueue(msg("old"), [("a", "A")], T0)
    box.enqueue(msg("new"), [("a", "A")], T0 + timedelta(hours=2))
    with caplog.at_level(logging.ERROR, logger="snapwatch.store.outbox"):
        assert box.expire(T0 + timedelta(hours=24, seconds=1), timedelta(hours=24)) == 1
    assert "alert old to A given up after 0 attempt(s)" in caplog.text
    assert box.counts() == {"pending": 1, "delivered": 0, "failed": 1}
    assert [r.alert_id for r in box.due(T0 + timedelta(hours=25))] == ["new"]


def test_unreadable_stored_message_is_failed_not_dropped(tmp_path: Path) -> None:
    conn, box = open_outbox(tmp_path / "s.db")
    box.enqueue(msg("x"), [("a", "A")], T0)
    conn.execute("UPDATE outbox SET message = '{broken'")
    conn.commit()
    assert box.due(T0) == []
    assert box.counts()["failed"] == 1
    assert "cannot be read" in conn.execute("SELECT last_error FROM outbox").fetchone()[0]


def test_enqueue_joins_the_callers_transaction(tmp_path: Path) -> None:
    conn, box = open_outbox(tmp_path / "s.db")
    conn.execute("BEGIN")
    box.enqueue(msg("x"), [("a", "A")], T0)
    conn.rollback()  # the caller's checkpoint failed: the alert goes with it, and is owed again on replay
    assert box.counts()["pending"] == 0


def test_a_queue_is_read_a_page_at_a_time_and_stops_at_a_head_that_waits(tmp_path: Path) -> None:
    from snapwatch.store.outbox import PAGE

    _, box = open_outbox(tmp_path / "s.db")
    for i in range(PAGE * 3 + 5):
        box.enqueue(msg(f"m{i:03d}"), [("a", "A")], T0 + timedelta(milliseconds=i))
    queue = box.queue("a", T0 + timedelta(days=1))
    first = next(queue)
    assert first.alert_id == "m000"
    box.mark_delivered(first, T0)  # marked while the queue is read: the next page still follows on
    rest = list(queue)
    assert [r.alert_id for r in rest] == [f"m{i:03d}" for i in range(1, PAGE * 3 + 5)]
    box.mark_retry(rest[0], T0, "A: down")  # the new head waits for its retry time: nothing behind it is due
    assert list(box.queue("a", T0 + timedelta(seconds=1))) == []
    assert box.pending_targets() == ["a"] and box.pending_targets({"b"}) == []


def test_delivered_and_failed_rows_are_pruned_after_the_retention_and_pending_ones_kept(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from snapwatch.store.outbox import Outbox

    conn, _ = open_outbox(tmp_path / "s.db")
    box = Outbox(conn, retention=timedelta(days=14))
    for i in range(4):
        box.enqueue(msg(f"old{i}"), [("a", "A")], T0)
    box.enqueue(msg("new"), [("a", "A")], T0 + timedelta(days=10))
    rows = list(box.queue("a", T0 + timedelta(days=11)))
    box.mark_delivered(rows[0], T0)
    box.mark_delivered(rows[-1], T0 + timedelta(days=10))
    with caplog.at_level(logging.CRITICAL):
        box.expire(T0 + timedelta(days=2), timedelta(days=1))  # old1..old3 never delivered: failed
    box.enqueue(msg("waiting"), [("b", "B")], T0)  # pending, however old: never pruned
    assert box.counts() == {"pending": 1, "delivered": 2, "failed": 3}
    assert box.prune(T0 + timedelta(days=13)) == 0  # not yet 14 days old
    assert box.prune(T0 + timedelta(days=15)) == 4
    assert box.counts() == {"pending": 1, "delivered": 1, "failed": 0}
