"""Silences: a rule (or all) on a source (or all) muted until a time, kept in the state file, read by the daemon."""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta

from snapwatch.codec import dt
from snapwatch.store.history import utc
from snapwatch.store.schema import joined_transaction


@dataclass(frozen=True, slots=True)
class Silence:
    """Alerts of ``rule`` (None: every rule) on ``source`` (None: every source) are not sent before ``ends_at``."""

    id: str
    rule: str | None
    source: str | None
    starts_at: datetime
    ends_at: datetime
    comment: str
    created_at: datetime

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def covers(self, rule: str, source: str, now: datetime) -> bool:
        return self.active(now) and self.rule in (None, rule) and self.source in (None, source)

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "rule": self.rule, "source": self.source, "starts_at": self.starts_at.isoformat(),
                "ends_at": self.ends_at.isoformat(), "comment": self.comment}


class Silences:
    """The ``silences`` table. Written by ``snapwatch silence`` (while the daemon runs: SQLite's WAL lets
    both work), read by the daemon before each hand-out of alerts, so no reload is needed."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def add(self, rule: str | None, source: str | None, length: timedelta, comment: str, now: datetime) -> Silence:
        silence = Silence(secrets.token_hex(4), rule, source, now, now + length, comment, now)
        with joined_transaction(self._conn) as c:
            c.execute("INSERT INTO silences VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (silence.id, rule, source, utc(now), utc(silence.ends_at), comment, utc(now)))
        return silence

    def all(self) -> list[Silence]:
        rows = self._conn.execute("SELECT id, rule, source, starts_at, ends_at, comment, created_at FROM silences "
                                  "ORDER BY created_at, id")
        return [Silence(i, r, s, dt(a), dt(e), c, dt(w)) for i, r, s, a, e, c, w in rows]

    def active(self, now: datetime) -> list[Silence]:
        return [s for s in self.all() if s.active(now)]

    def expire(self, silence_id: str, now: datetime) -> bool:
        """End a silence now; False when there is no active silence with that id."""
        with joined_transaction(self._conn) as c:
            changed = c.execute("UPDATE silences SET ends_at = ? WHERE id = ? AND ends_at > ?",
                                (utc(now), silence_id, utc(now))).rowcount
        return bool(changed)
