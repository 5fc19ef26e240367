"""The state file's history: responses per minute, token switches and incidents over a time range, pruned."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from snapwatch.codec import diagnosis_from, dt
from snapwatch.detect.timeline import TokenSwitch
from snapwatch.model import Diagnosis
from snapwatch.store.schema import joined_transaction


def utc(at: datetime) -> str:
    """How a time is kept in the history tables: UTC, fixed width, so that text order is time order."""
    return at.astimezone(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class MinuteCount:
    """``count`` responses of ``status`` in the minute starting at ``minute``, on ``path``."""

    path: str
    minute: datetime
    status: str
    count: int


class HistoryReader:
    """Reads (and prunes) the history the daemon keeps; times are aware datetimes in UTC."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def minutes(self, since: datetime, until: datetime) -> list[MinuteCount]:
        rows = self._conn.execute(
            "SELECT path, minute, status, count FROM traffic_minutes WHERE minute >= ? AND minute <= ? "
            "ORDER BY minute, path, status", (utc(since), utc(until)))
        return [MinuteCount(path, dt(minute), status, count) for path, minute, status, count in rows]

    def switches(self, since: datetime, until: datetime) -> list[tuple[str, TokenSwitch]]:
        """(path, switch) pairs in time order."""
        rows = self._conn.execute(
            "SELECT path, at, before, after FROM token_switches WHERE at >= ? AND at <= ? ORDER BY at",
            (utc(since), utc(until)))
        return [(path, TokenSwitch(dt(at), before, after)) for path, at, before, after in rows]

    def diagnosis(self, incident_id: str) -> Diagnosis | None:
        """The incident's diagnosis as the alert policy last kept it (None: none, or unreadable)."""
        row = self._conn.execute("SELECT diagnosis FROM alert_state WHERE incident_id = ?", (incident_id,)).fetchone()
        if row is None or row[0] is None:
            return None
        try:
            return diagnosis_from(json.loads(row[0]))
        except (KeyError, TypeError, ValueError):
            return None

    def span(self) -> tuple[datetime, datetime] | None:
        """The first and last minute the history holds, or None when it holds none."""
        first, last = self._conn.execute("SELECT MIN(minute), MAX(minute) FROM traffic_minutes").fetchone()
        return None if first is None else (dt(first), dt(last))

    def prune(self, before: datetime) -> int:
        """Forget minutes and switches older than ``before``; returns the rows removed."""
        with joined_transaction(self._conn) as c:
            removed = c.execute("DELETE FROM traffic_minutes WHERE minute < ?", (utc(before),)).rowcount
            removed += c.execute("DELETE FROM token_switches WHERE at < ?", (utc(before),)).rowcount
        return int(removed)


class HistoryPruner:
    """Forgets history older than the retention, at most once an hour (the daemon asks on every tick)."""

    EVERY = timedelta(hours=1)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._reader, self._last = HistoryReader(conn), datetime.min.replace(tzinfo=UTC)

    def prune_if_due(self, now: datetime, retention: timedelta) -> None:
        if now - self._last >= self.EVERY:
            self._last = now
            self._reader.prune(now - retention)
