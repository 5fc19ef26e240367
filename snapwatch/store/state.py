"""The SQLite state store: checkpoints, counters, each source's memory (detector, history), incidents, gaps.

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
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from snapwatch.codec import dt, iso
from snapwatch.detect.history import History
from snapwatch.model import Checkpoint, Gap
from snapwatch.store.schema import StateError, joined_transaction, migrate


@dataclass(frozen=True, slots=True)
class IncidentRow:
    """An incident row as stored; ``json`` holds whatever else the caller keeps (counts, diagnosis)."""

    id: str
    rule: str
    source: str
    state: str  # "open" | "resolved"
    opened_at: datetime
    resolved_at: datetime | None = None
    verdict: str | None = None
    json: str = "{}"


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
            migrate(conn, path)
        except sqlite3.DatabaseError as exc:
            raise StateError(f"{path}: not a usable snapwatch state file ({exc})") from exc
        return store

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
                     source_memory: Mapping[str, Any] | None = None,
                     incident_changes: Sequence[IncidentRow] = (), gaps: Sequence[Gap] = ()) -> None:
        """Commit, in ONE transaction, a checkpoint and everything the lines before it produced.

        ``status_counts`` (status code as text → responses) and ``requests`` are added to the
        source's persistent counters; ``last_record_at`` only moves forward; the source's memory (detector
        and history snapshot) replaces the stored one; incidents are upserted by id; gaps are appended.
        The source is ``checkpoint.path`` (or ``path`` when there is no checkpoint to move).
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
            if source_memory is not None:
                c.execute("INSERT OR REPLACE INTO source_memory (path, json) VALUES (?, ?)",
                          (source, json.dumps(source_memory, sort_keys=True)))
            for inc in incident_changes:
                c.execute("INSERT OR REPLACE INTO incidents VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                          (inc.id, inc.rule, inc.source, inc.state, iso(inc.opened_at),
                           iso(inc.resolved_at), inc.verdict, inc.json))
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

    def source_memory(self, path: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT json FROM source_memory WHERE path=?", (path,)).fetchone()
        return json.loads(row[0]) if row else None

    def incidents(self, *, open_only: bool = False) -> list[IncidentRow]:
        """Incidents in the order they opened."""
        where = "WHERE state='open'" if open_only else ""
        rows = self.conn.execute(f"SELECT * FROM incidents {where} ORDER BY opened_at, id")  # noqa: S608
        return [IncidentRow(r[0], r[1], r[2], r[3], dt(r[4]), dt(r[5]), r[6], r[7])
                for r in rows]

    def gaps(self) -> list[Gap]:
        rows = self.conn.execute("SELECT path, dev, inode, lost_bytes, since, until, reason FROM log_gaps "
                                 "ORDER BY id")
        return [Gap(r[0], r[0], r[1] or 0, r[2] or 0, r[3], dt(r[4]), dt(r[5]), r[6]) for r in rows]

    def status(self) -> dict[str, object]:
        """What ``status --json`` prints (contract.md): sources, open incidents, outbox counts.

        Beyond the contract: per source what the parser could not take at face value (``skipped``, e.g.
        ``unanswered_requests``) and Snap's answers per token fingerprint (``tokens``); per incident its
        counts as of the last committed batch (``responses``, ``by_status``)."""
        sources = []
        for path, inode, offset, requests, last in self.conn.execute(
                "SELECT path, inode, offset, requests, last_record_at FROM sources ORDER BY path").fetchall():
            memory = self.source_memory(path) or {}
            sources.append({"path": path, "inode": inode, "offset": offset, "responses": self.counters(path),
                            "requests": requests, "last_record_at": last,
                            "skipped": {k: n for k, n in dict(memory.get("parse") or {}).items() if n},
                            "tokens": _tokens(memory.get("history"))})
        incidents = []
        for i in self.incidents(open_only=True):
            counts = _counts(i.json)
            incidents.append({"id": i.id, "rule": i.rule, "source": i.source, "state": i.state,
                              "opened_at": iso(i.opened_at), "verdict": i.verdict, **counts})
        outbox = {"pending": 0, "delivered": 0, "failed": 0}
        for state, count in self.conn.execute("SELECT state, count(*) FROM outbox GROUP BY state"):
            outbox[state] = count
        gaps = [{"path": g.path, "lost_bytes": g.lost_bytes, "since": iso(g.since), "until": iso(g.until),
                 "reason": g.reason} for g in self.gaps()]
        return {"sources": sources, "incidents": incidents, "outbox": outbox, "log_gaps": gaps}


def _tokens(history: object) -> dict[str, dict[str, int]]:
    """Per token fingerprint, the 2xx and 401/403 answers a stored history counted (over every pixel)."""
    if not isinstance(history, dict):
        return {}
    try:
        usages = list(History.restore(history).usages())
    except ValueError:
        return {}
    out: dict[str, dict[str, int]] = {}
    for u in usages:
        if u.token_fp is not None:
            seen = out.setdefault(u.token_fp, {"accepted": 0, "rejected": 0})
            seen["accepted"] += u.accepted
            seen["rejected"] += u.rejected
    return dict(sorted(out.items()))


def _counts(text: str) -> dict[str, object]:
    """An incident row's stored counts (``responses``, ``by_status``), when it has them."""
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return {k: data[k] for k in ("responses", "by_status") if isinstance(data, dict) and k in data}
