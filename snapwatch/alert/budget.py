"""The hourly cap's books: hand-outs in the sliding hour, room kept for owed RESOLVED alerts, held-back counts."""

from __future__ import annotations

import sqlite3

from snapwatch.config.models import AlertsConfig

HOUR_US = 3_600_000_000  # microseconds


class HourlyBudget:
    """Reads and keeps the cap's figures in ``alert_sent`` and ``alert_meta`` (see ``alert.policy``)."""

    def __init__(self, conn: sqlite3.Connection, alerts: AlertsConfig) -> None:
        self._conn, self._cfg = conn, alerts

    def used(self) -> int:
        """Alerts handed out and still remembered (the policy prunes those older than the hour)."""
        used: int = self._conn.execute("SELECT COUNT(*) FROM alert_sent").fetchone()[0]
        return used

    def reserved(self) -> int:
        """Slots kept free for the RESOLVED alerts owed to announced, unresolved incidents."""
        if not self._cfg.send_resolved:
            return 0
        reserved: int = self._conn.execute(
            "SELECT COUNT(*) FROM alert_state WHERE announced = 1 AND resolved IN ('no', 'owed')").fetchone()[0]
        return reserved

    def capacity_at(self, n: int, allowed: int) -> int | None:
        """When at most ``allowed`` hand-outs remain in the sliding hour (``n`` if that is so already).

        Counts every hand-out still stored, not only those within the hour before ``n``: asked about a
        later ``now`` than the last ``due``, the answer is the moment room returned, not ``n``.
        """
        if allowed < 0:
            return None  # only a resolution can free room; the caller asks again after transitions
        sent: list[int] = [at for (at,) in self._conn.execute("SELECT at_us FROM alert_sent ORDER BY at_us")]
        if len(sent) <= allowed:
            return n
        return sent[len(sent) - allowed - 1] + HOUR_US

    def meta(self, key: str) -> int:
        row = self._conn.execute("SELECT value FROM alert_meta WHERE key = ?", (key,)).fetchone()
        return 0 if row is None else int(row[0])

    def set_meta(self, key: str, value: int) -> None:
        self._conn.execute("INSERT OR REPLACE INTO alert_meta VALUES (?, ?)", (key, value))
