"""The durable outbox: one row per (alert, target), pending → delivered or failed, with backoff and expiry."""

from __future__ import annotations

import logging
import random
import sqlite3
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from snapwatch.codec import Message
from snapwatch.store.schema import joined_transaction, migrate

log = logging.getLogger(__name__)

STATES = ("pending", "delivered", "failed")
PAGE = 32  # pending rows read at a time: a long queue to a dead target costs a page of memory, not the queue
PRUNE_EVERY = timedelta(hours=1)


def _ts(at: datetime) -> str:
    # UTC with fixed microseconds so that text order is time order in SQL; naive times are taken as UTC.
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.isoformat(timespec="microseconds")


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One message owed to one target."""

    seq: int
    alert_id: str
    target: str  # the target's stable key (a hash, never the URL)
    display: str  # the target's masked URL
    message: Message
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_error: str | None


_COLUMNS = "seq, alert_id, target, target_display, message, attempts, created_at, next_attempt_at, last_error"


class Outbox:
    """The ``outbox`` table: one row per (alert id, target), pending → delivered, or failed after max age.

    Each target's rows are delivered in creation order: a target whose oldest pending row waits for its
    retry time holds back its newer rows too, so alerts never arrive out of order. Writes commit at once,
    unless the connection is already in a transaction, which they join (the caller commits). Delivered and
    failed rows are pruned ``retention`` after they were created.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        rng: random.Random | None = None,
        base_delay: timedelta = timedelta(seconds=10),
        max_delay: timedelta = timedelta(minutes=15),
        retention: timedelta = timedelta(days=14),
    ) -> None:
        self._conn = conn
        self._rng = rng or random.Random()  # noqa: S311  (jitter, not cryptography)
        self._base, self._max = base_delay, max_delay
        self._retention = retention
        self._pruned_at: datetime | None = None
        migrate(conn)  # the table is created by the store's migrations (store.schema)

    def enqueue(self, message: Message, targets: Sequence[tuple[str, str]], now: datetime) -> int:
        """Owe ``message`` to each ``(key, display)`` target in one transaction; returns the rows added.

        Idempotent: an (alert id, target) pair already in the table is left as it is.
        """
        doc, at = message.to_json(), _ts(now)
        with joined_transaction(self._conn):
            before = self._conn.total_changes
            self._conn.executemany(
                "INSERT OR IGNORE INTO outbox (alert_id, target, target_display, message, created_at,"
                " next_attempt_at) VALUES (?, ?, ?, ?, ?, ?)",
                [(message.alert_id, key, display, doc, at, at) for key, display in targets],
            )
            return self._conn.total_changes - before

    def due(self, now: datetime, targets: Collection[str] | None = None) -> list[OutboxRow]:
        """Pending rows to send now, oldest first: each target's queue from its head, if the head is due.

        ``targets`` limits the answer to those keys. A row whose stored message cannot be read is marked
        failed and logged, never returned. Holds every due row in memory: the notifier reads ``queue``.
        """
        rows = [row for key in self.pending_targets(targets) for row in self.queue(key, now)]
        return sorted(rows, key=lambda r: (r.created_at, r.seq))

    def pending_targets(self, targets: Collection[str] | None = None) -> list[str]:
        """The keys of the targets with pending rows (limited to ``targets`` when given)."""
        found = [key for (key,) in self._conn.execute("SELECT DISTINCT target FROM outbox WHERE state = 'pending'")]
        return [key for key in found if targets is None or key in targets]

    def queue(self, target: str, now: datetime) -> Iterator[OutboxRow]:
        """``target``'s pending rows due now, oldest first, read ``PAGE`` rows at a time.

        Stops at the first row that waits for its retry time (the rest of the queue waits with it). A row
        whose stored message cannot be read is marked failed and logged, never yielded.
        """
        after, at = ("", 0), _ts(now)
        while True:
            page = self._conn.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE state = 'pending' AND target = ?"  # noqa: S608
                " AND (created_at, seq) > (?, ?) ORDER BY created_at, seq LIMIT ?", (target, *after, PAGE),
            ).fetchall()
            if not page:
                return
            for seq, alert_id, key, display, doc, attempts, created, next_at, error in page:
                after = (created, seq)
                if next_at > at:
                    return  # the head waits for its retry time, and so does the rest of the queue
                try:
                    message = Message.from_json(doc)
                except ValueError as exc:
                    self._fail(seq, f"the stored message cannot be read ({exc})")
                    log.error("outbox: alert %s for %s cannot be read; marked failed", alert_id, display)
                    continue
                yield OutboxRow(seq, alert_id, key, display, message, attempts, datetime.fromisoformat(created),
                                datetime.fromisoformat(next_at), error)

    def prune(self, now: datetime) -> int:
        """Delete delivered and failed rows created ``retention`` before ``now`` (at most once an hour)."""
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return 0
        self._pruned_at = now
        with joined_transaction(self._conn):
            before = self._conn.total_changes
            self._conn.execute("DELETE FROM outbox WHERE state IN ('delivered', 'failed') AND created_at < ?",
                               (_ts(now - self._retention),))
            return self._conn.total_changes - before

    def _fail(self, seq: int, error: str) -> None:
        with joined_transaction(self._conn):
            self._conn.execute("UPDATE outbox SET state = 'failed', last_error = ? WHERE seq = ?", (error, seq))

    def mark_delivered(self, row: OutboxRow, now: datetime) -> None:
        with joined_transaction(self._conn):
            self._conn.execute(
                "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, delivered_at = ?,"
                " last_error = NULL WHERE seq = ? AND state = 'pending'",
                (_ts(now), row.seq),
            )

    def mark_retry(self, row: OutboxRow, now: datetime, error: str) -> datetime:
        """Count a failed attempt and schedule the next: exponential backoff with jitter. Returns its time."""
        delay = min(self._max, self._base * (1 << min(row.attempts, 30)))
        next_at = now + delay * (0.5 + self._rng.random() / 2)  # jitter: 50-100 % of the delay
        with joined_transaction(self._conn):
            self._conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?"
                " WHERE seq = ? AND state = 'pending'",
                (_ts(next_at), error, row.seq),
            )
        return next_at

    def expire(self, now: datetime, max_age: timedelta) -> int:
        """Mark pending rows created more than ``max_age`` before ``now`` failed, logging each; returns how many."""
        cutoff = _ts(now - max_age)
        with joined_transaction(self._conn):
            stale = self._conn.execute(
                "SELECT seq, alert_id, target_display, attempts, last_error FROM outbox"
                " WHERE state = 'pending' AND created_at <= ? ORDER BY created_at, seq",
                (cutoff,),
            ).fetchall()
            for seq, alert_id, display, attempts, error in stale:
                self._conn.execute("UPDATE outbox SET state = 'failed' WHERE seq = ?", (seq,))
                log.error(
                    "alert %s to %s given up after %d attempt(s) in %s: %s",
                    alert_id,
                    display,
                    attempts,
                    max_age,
                    error or "never attempted",
                )
        return len(stale)

    def counts(self) -> dict[str, int]:
        """Rows per state: ``{"pending": n, "delivered": n, "failed": n}``."""
        out = dict.fromkeys(STATES, 0)
        for state, n in self._conn.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state"):
            out[state] = n
        return out

    def target_counts(self) -> dict[str, dict[str, int]]:
        """Rows per state for each target, keyed by the target's masked display form."""
        out: dict[str, dict[str, int]] = {}
        query = "SELECT target_display, state, COUNT(*) FROM outbox GROUP BY target, target_display, state"
        for display, state, n in self._conn.execute(query):
            out.setdefault(display, dict.fromkeys(STATES, 0))[state] = n
        return out
