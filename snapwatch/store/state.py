"""The SQLite state store: checkpoints, counters, detector snapshots, incidents, token history, gaps.

One file, ``state.db``, in the state directory (directory 0700, file 0600), in WAL mode. Every
``commit_batch`` is one transaction: a checkpoint and the counters of the lines before it become
durable together or not at all, so a crash at any instant neither loses nor double-counts. WAL with
``synchronous=NORMAL`` keeps that atomicity across a process crash; a power loss may roll back the
last few batches, which then are read and counted again together with their checkpoint, still once.
No token is ever stored: tokens are named by their fingerprint.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from snapwatch.codec import dt, iso
from snapwatch.errors import SnapwatchError
from snapwatch.model import Checkpoint, Gap

SCHEMA_VERSION = 1


class StateError(SnapwatchError):
    """The state file cannot be used (newer schema, not a database, no permission)."""


_MIGRATIONS: dict[int, str] = {
    # version → the script that brings the previous version up to it
    1: """
    CREATE TABLE sources (
        path TEXT PRIMARY KEY, dev INTEGER NOT NULL, inode INTEGER NOT NULL, offset INTEGER NOT NULL,
        fingerprint TEXT NOT NULL, mtime_ns INTEGER NOT NULL DEFAULT 0, requests INTEGER NOT NULL DEFAULT 0,
        last_record_at TEXT);
    CREATE TABLE counters (
        path TEXT NOT NULL, status TEXT NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (path, status));
    CREATE TABLE detector_snapshots (path TEXT PRIMARY KEY, json TEXT NOT NULL);
    CREATE TABLE incidents (
        id TEXT PRIMARY KEY, rule TEXT NOT NULL, source TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('open', 'resolved')),
        opened_at TEXT NOT NULL, resolved_at TEXT, verdict TEXT, json TEXT NOT NULL DEFAULT '{}');
    CREATE TABLE token_history (
        fingerprint TEXT NOT NULL, pixel TEXT NOT NULL, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL,
        accepted INTEGER NOT NULL DEFAULT 0, rejected INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (fingerprint, pixel));
    CREATE TABLE log_gaps (
        id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL, dev INTEGER, inode INTEGER,
        lost_bytes INTEGER, since TEXT, until TEXT, reason TEXT NOT NULL);
    """,
}


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    """An incident row as stored; ``json`` holds whatever else the caller keeps (counts, diagnosis)."""

    id: str
    rule: str
    source: str
    state: str  # "open" | "resolved"
    opened_at: datetime
    resolved_at: datetime | None = None
    verdict: str | None = None
    json: str = "{}"


@dataclass(frozen=True, slots=True)
class TokenUpdate:
    """Responses seen for one token (by fingerprint) and pixel between ``first_seen`` and ``last_seen``."""

    fingerprint: str
    pixel: str
    first_seen: datetime
    last_seen: datetime
    accepted: int = 0
    rejected: int = 0


@dataclass(frozen=True, slots=True)
class TokenHistory:
    fingerprint: str
    pixel: str
    first_seen: datetime
    last_seen: datetime
    accepted: int
    rejected: int


@contextmanager
def joined_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction on ``conn`` (opened with ``isolation_level=None``): BEGIN IMMEDIATE … COMMIT,
    ROLLBACK on any exception; or, when ``conn`` is already in a transaction, that one, joined (its owner
    commits or rolls back)."""
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class Store:
    """The state store. Open with ``Store.open(state_dir)``; close with ``close()`` (or ``with``)."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn  # other modules keep their own tables here (e.g. the outbox)
        self.path = path

    @classmethod
    def open(cls, state_dir: Path | str) -> Store:
        """Open (creating and migrating as needed) ``state_dir/state.db``.

        Raises StateError with a one-line reason when the directory or file cannot be used, or when
        the file was written by a newer snapwatch (its schema version is higher than this one's).
        """
        directory = Path(state_dir)
        path = directory / "state.db"
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Create the file 0600 before SQLite does; SQLite gives -wal/-shm the same mode.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
        except OSError as exc:
            raise StateError(f"cannot use state directory {directory}: {exc.strerror or exc}") from exc
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            store = cls(conn, path)
            store._migrate()
        except sqlite3.DatabaseError as exc:
            raise StateError(f"{path}: not a usable snapwatch state file ({exc})") from exc
        return store

    def _migrate(self) -> None:
        version = int(self.conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StateError(
                f"{self.path} has schema version {version}, newer than this snapwatch knows "
                f"({SCHEMA_VERSION}); upgrade snapwatch or point state_dir elsewhere")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self.transaction() as conn:
                for statement in _MIGRATIONS[target].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={target}")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """One write transaction, or the one already open, joined (see ``joined_transaction``)."""
        return joined_transaction(self.conn)

    # -- the one write path of the pipeline ----------------------------------------------------

    def commit_batch(self, checkpoint: Checkpoint | None, *, path: str | None = None,
                     status_counts: Mapping[str, int] | None = None, requests: int = 0,
                     last_record_at: datetime | None = None,
                     detector_snapshot: Mapping[str, Any] | None = None,
                     incident_changes: Sequence[IncidentRecord] = (),
                     token_updates: Sequence[TokenUpdate] = (), gaps: Sequence[Gap] = ()) -> None:
        """Commit, in ONE transaction, a checkpoint and everything the lines before it produced.

        ``status_counts`` (status code as text → responses) and ``requests`` are added to the
        source's persistent counters; ``last_record_at`` only moves forward; the detector snapshot
        replaces the stored one; incidents are upserted by id; token updates widen the seen range
        and add counts; gaps are appended. The source is ``checkpoint.path`` (or ``path`` when there
        is no checkpoint to move).
        """
        source = checkpoint.path if checkpoint is not None else path
        if source is None:
            raise ValueError("commit_batch needs a checkpoint or a path")
        with self.transaction() as c:
            c.execute("INSERT OR IGNORE INTO sources (path, dev, inode, offset, fingerprint) "
                      "VALUES (?, 0, 0, 0, '')", (source,))
            if checkpoint is not None:
                c.execute("UPDATE sources SET dev=?, inode=?, offset=?, fingerprint=?, mtime_ns=? WHERE path=?",
                          (checkpoint.dev, checkpoint.inode, checkpoint.offset, checkpoint.fingerprint,
                           checkpoint.mtime_ns, source))
            if requests:
                c.execute("UPDATE sources SET requests = requests + ? WHERE path=?", (requests, source))
            if last_record_at is not None:
                c.execute("UPDATE sources SET last_record_at=? WHERE path=? AND "
                          "(last_record_at IS NULL OR last_record_at < ?)",
                          (iso(last_record_at), source, iso(last_record_at)))
            for status, count in (status_counts or {}).items():
                if count:
                    c.execute("INSERT INTO counters (path, status, count) VALUES (?, ?, ?) "
                              "ON CONFLICT (path, status) DO UPDATE SET count = count + excluded.count",
                              (source, str(status), count))
            if detector_snapshot is not None:
                c.execute("INSERT OR REPLACE INTO detector_snapshots (path, json) VALUES (?, ?)",
                          (source, json.dumps(detector_snapshot, sort_keys=True)))
            for inc in incident_changes:
                c.execute("INSERT OR REPLACE INTO incidents VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                          (inc.id, inc.rule, inc.source, inc.state, iso(inc.opened_at),
                           iso(inc.resolved_at), inc.verdict, inc.json))
            for t in token_updates:
                c.execute(
                    "INSERT INTO token_history VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (fingerprint, pixel) DO "
                    "UPDATE SET first_seen = min(first_seen, excluded.first_seen), "
                    "last_seen = max(last_seen, excluded.last_seen), accepted = accepted + excluded.accepted, "
                    "rejected = rejected + excluded.rejected",
                    (t.fingerprint, t.pixel, iso(t.first_seen), iso(t.last_seen), t.accepted, t.rejected))
            for g in gaps:
                c.execute("INSERT INTO log_gaps (path, dev, inode, lost_bytes, since, until, reason) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?)",
                          (g.path, g.dev, g.inode, g.lost_bytes, iso(g.since), iso(g.until), g.reason))

    # -- reading -------------------------------------------------------------------------------

    def checkpoint(self, path: str) -> Checkpoint | None:
        """Where ``path`` was left, or None when it was never seen."""
        row = self.conn.execute("SELECT dev, inode, offset, fingerprint, mtime_ns FROM sources "
                                "WHERE path=? AND fingerprint != ''", (path,)).fetchone()
        return Checkpoint(path, row[0], row[1], row[2], row[3], row[4]) if row else None

    def checkpoints(self) -> dict[str, Checkpoint]:
        """Every stored checkpoint by path (glob sources have one per file)."""
        rows = self.conn.execute("SELECT path FROM sources WHERE fingerprint != ''").fetchall()
        return {p: cp for (p,) in rows if (cp := self.checkpoint(p)) is not None}

    def counters(self, path: str) -> dict[str, int]:
        """Persistent responses per status code for ``path``."""
        rows = self.conn.execute("SELECT status, count FROM counters WHERE path=? ORDER BY status", (path,))
        return dict(rows.fetchall())

    def requests(self, path: str) -> int:
        row = self.conn.execute("SELECT requests FROM sources WHERE path=?", (path,)).fetchone()
        return int(row[0]) if row else 0

    def detector_snapshot(self, path: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT json FROM detector_snapshots WHERE path=?", (path,)).fetchone()
        return json.loads(row[0]) if row else None

    def incidents(self, *, open_only: bool = False) -> list[IncidentRecord]:
        """Incidents in the order they opened."""
        where = "WHERE state='open'" if open_only else ""
        rows = self.conn.execute(f"SELECT * FROM incidents {where} ORDER BY opened_at, id")  # noqa: S608
        return [IncidentRecord(r[0], r[1], r[2], r[3], dt(r[4]), dt(r[5]), r[6], r[7])
                for r in rows]

    def token_history(self, fingerprint: str | None = None) -> list[TokenHistory]:
        rows = self.conn.execute(
            "SELECT * FROM token_history WHERE ? IS NULL OR fingerprint = ? ORDER BY first_seen",
            (fingerprint, fingerprint))
        return [TokenHistory(r[0], r[1], dt(r[2]), dt(r[3]), r[4], r[5])
                for r in rows]

    def gaps(self) -> list[Gap]:
        rows = self.conn.execute("SELECT path, dev, inode, lost_bytes, since, until, reason FROM log_gaps "
                                 "ORDER BY id")
        return [Gap(r[0], r[0], r[1] or 0, r[2] or 0, r[3], dt(r[4]), dt(r[5]), r[6]) for r in rows]

    def status(self) -> dict[str, object]:
        """What ``status --json`` prints (contract.md): sources, open incidents, outbox counts."""
        sources = [
            {"path": path, "inode": inode, "offset": offset, "responses": self.counters(path),
             "requests": requests, "last_record_at": last}
            for path, inode, offset, requests, last in self.conn.execute(
                "SELECT path, inode, offset, requests, last_record_at FROM sources ORDER BY path")
        ]
        incidents = [
            {"id": i.id, "rule": i.rule, "source": i.source, "state": i.state,
             "opened_at": iso(i.opened_at), "verdict": i.verdict}
            for i in self.incidents(open_only=True)
        ]
        outbox = {"pending": 0, "delivered": 0, "failed": 0}
        has_outbox = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='outbox'").fetchone()
        if has_outbox:
            for state, count in self.conn.execute("SELECT state, count(*) FROM outbox GROUP BY state"):
                outbox[state] = count
        gaps = [{"path": g.path, "lost_bytes": g.lost_bytes, "since": iso(g.since), "until": iso(g.until),
                 "reason": g.reason} for g in self.gaps()]
        return {"sources": sources, "incidents": incidents, "outbox": outbox, "log_gaps": gaps}
