"""The SQLite state store: checkpoints, counters, each source's memory (detector, history), incidents, gaps.

One file, ``state.db``, in the state directory (directory 0700, file 0600), in WAL mode. Every
``commit_batch`` is one transaction: a checkpoint and the counters of the lines before it become
durable together or not at all, so a crash at any instant neither loses nor double-counts. WAL with
``synchronous=NORMAL`` keeps that atomicity across a process crash; a power loss may roll back the
last few batches, which then are read and counted again together with their checkpoint, still once.
No token is ever stored: tokens are named by their fingerprint.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sqlite3
import stat
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from snapwatch.codec import dt, duration, iso, stored_json
from snapwatch.detect.history import History
from snapwatch.detect.rows import RowChanges
from snapwatch.detect.timeline import TokenSwitch
from snapwatch.model import Checkpoint, EnvState, Gap
from snapwatch.store.history import utc
from snapwatch.store.schema import StateError, joined_transaction, migrate, unavailable
from snapwatch.store.statedir import DB_NAME, UnsafeStateDir, os_unavailable, prepare

log = logging.getLogger(__name__)


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

        The directory is made safe first (``statedir.prepare``); ``state.db`` is never followed through a
        symbolic link, and an empty one that this call did not create is named in a warning, not used as a
        silent reset. Raises UnsafeStateDir (exit 78) for an unsafe directory or file, StateUnavailable
        when the disk refuses for now (full, read-only, locked), StateError otherwise: a one-line reason,
        or a file written by a newer snapwatch (its schema version is higher than this one's).
        """
        directory = prepare(state_dir)
        path = directory / DB_NAME
        ident = _open_db_file(path)
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.OperationalError as exc:
            raise unavailable(exc, path) from exc
        try:
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != ident:  # replaced meanwhile
                raise UnsafeStateDir(f"state_dir: {path} was replaced while it was being opened")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            store = cls(conn, path)
            migrate(conn, path)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.OperationalError):
                raise unavailable(exc, path) from exc
            if isinstance(exc, sqlite3.DatabaseError):
                raise StateError(f"{path}: not a usable snapwatch state file ({exc})") from exc
            raise
        return store

    def close(self) -> None:
        self.conn.close()

    def check_writable(self) -> None:
        """Save something small (the schema version, unchanged); raises StateUnavailable when that fails."""
        try:
            with self.transaction() as c:
                version = int(c.execute("PRAGMA user_version").fetchone()[0])
                c.execute(f"PRAGMA user_version={version}")
        except sqlite3.OperationalError as exc:
            raise unavailable(exc, self.path) from exc

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
                     source_memory: Mapping[str, Any] | str | None = None,
                     memory_rows: Mapping[str, RowChanges] | None = None,
                     incident_changes: Sequence[IncidentRow] = (), gaps: Sequence[Gap] = (),
                     minutes: Mapping[tuple[datetime, str], int] | None = None,
                     switches: Sequence[TokenSwitch] = ()) -> None:
        """Commit, in ONE transaction, a checkpoint and everything the lines before it produced.

        ``status_counts`` (status code as text → responses) and ``requests`` are added to the
        source's persistent counters; ``last_record_at`` only moves forward; the source's memory (detector
        and history snapshot, or its ``stored_json`` text) replaces the stored one (None: left as it is);
        ``memory_rows`` (part → its changes) saves the parts kept as rows apart from it (``source_memory``
        puts them back in); incidents are upserted by id; gaps are appended;
        ``minutes`` ((minute, status) → responses) are added to the per-minute history, token switches
        appended.
        The source is ``checkpoint.path`` (or ``path`` when there is no checkpoint to move).
        """
        source = checkpoint.path if checkpoint is not None else path
        if source is None:
            raise ValueError("commit_batch needs a checkpoint or a path")
        try:
            self._commit_batch(source, checkpoint, status_counts, requests, last_record_at, source_memory,
                               memory_rows or {}, incident_changes, gaps, minutes or {}, switches)
        except sqlite3.OperationalError as exc:  # full, read-only, locked: nothing of this batch was saved
            raise unavailable(exc, self.path) from exc

    def _commit_batch(self, source: str, checkpoint: Checkpoint | None, status_counts: Mapping[str, int] | None,
                      requests: int, last_record_at: datetime | None,
                      source_memory: Mapping[str, Any] | str | None, memory_rows: Mapping[str, RowChanges],
                      incident_changes: Sequence[IncidentRow], gaps: Sequence[Gap],
                      minutes: Mapping[tuple[datetime, str], int], switches: Sequence[TokenSwitch]) -> None:
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
                          (source, source_memory if isinstance(source_memory, str) else stored_json(source_memory)))
            for part, changes in memory_rows.items():
                if changes.floor is not None:
                    c.execute("DELETE FROM memory_rows WHERE path=? AND part=? AND seq < ?",
                              (source, part, changes.floor))
                if changes.rows:
                    c.executemany("INSERT OR REPLACE INTO memory_rows VALUES (?, ?, ?, ?)",
                                  [(source, part, row[0], stored_json(row)) for row in changes.rows])
            for inc in incident_changes:
                c.execute("INSERT OR REPLACE INTO incidents VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                          (inc.id, inc.rule, inc.source, inc.state, iso(inc.opened_at),
                           iso(inc.resolved_at), inc.verdict, inc.json))
            if minutes:
                c.executemany("INSERT INTO traffic_minutes VALUES (?, ?, ?, ?) ON CONFLICT (path, minute, status) "
                              "DO UPDATE SET count = count + excluded.count",
                              [(source, utc(minute), status, n) for (minute, status), n in minutes.items()])
            c.executemany("INSERT INTO token_switches VALUES (?, ?, ?, ?)",
                          [(source, utc(s.at), s.before, s.after) for s in switches])
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
        """The source's memory document as saved, with the parts saved as rows put back in their places."""
        row = self.conn.execute("SELECT json FROM source_memory WHERE path=?", (path,)).fetchone()
        if not row:
            return None
        memory: dict[str, Any] = json.loads(row[0])
        parts: dict[str, list[Any]] = {}
        for part, text in self.conn.execute("SELECT part, json FROM memory_rows WHERE path=? ORDER BY part, seq",
                                            (path,)):
            parts.setdefault(part, []).append(json.loads(text))
        for part, rows in parts.items():
            *outer, name = part.split("/")
            place = memory
            for key in outer:
                place = place.setdefault(key, {}) if isinstance(place, dict) else None
            if isinstance(place, dict):
                place[name] = rows
        return memory

    def incidents(self, *, open_only: bool = False) -> list[IncidentRow]:
        """Incidents in the order they opened."""
        where = "WHERE state='open'" if open_only else ""
        rows = self.conn.execute(f"SELECT * FROM incidents {where} ORDER BY opened_at, id")  # noqa: S608
        return [IncidentRow(r[0], r[1], r[2], r[3], dt(r[4]), dt(r[5]), r[6], r[7])
                for r in rows]

    def recent_incidents(self, since: datetime) -> list[dict[str, object]]:
        """Incidents open now or resolved after ``since``, the latest first, as ``status --history`` shows them."""
        out: list[dict[str, object]] = []
        for row in reversed(self.incidents()):
            if row.resolved_at is not None and row.resolved_at < since:
                continue
            stored = json.loads(row.json or "{}")
            end = row.resolved_at or (stored.get("last_at") and dt(stored["last_at"]))
            out.append({"id": row.id, "rule": row.rule, "source": row.source, "state": row.state,
                        "opened_at": iso(row.opened_at), "resolved_at": iso(row.resolved_at),
                        "duration": duration(end - row.opened_at) if isinstance(end, datetime) else None,
                        "failed": stored.get("responses"), "by_status": dict(stored.get("by_status") or {}),
                        "verdict": row.verdict})
        return out

    def record_env(self, state: EnvState) -> bool:
        """Remember what the token source holds from ``state.at`` on, unless it is what the last record says
        already (then nothing is written). Fingerprints only. Returns whether a row was written."""
        last = self.env_history()[-1:] or None
        if last is not None and (last[0].fingerprint, last[0].source) == (state.fingerprint, state.source):
            return False
        with self.transaction() as c:
            c.execute("INSERT INTO env_changes (at, fingerprint, source) VALUES (?, ?, ?)",
                      (iso(state.at) or "", state.fingerprint, state.source))
        return True

    def env_history(self) -> list[EnvState]:
        """What the token source held over time, oldest first (see ``record_env``)."""
        rows = self.conn.execute("SELECT at, fingerprint, source FROM env_changes ORDER BY rowid")
        return [EnvState(dt(at) if at else None, fp, source) for at, fp, source in rows]

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
        targets = [{"target": display, "last": state, "at": at, "error": error} for display, state, at, error in
                   self.conn.execute("SELECT target_display, state, COALESCE(delivered_at, created_at), last_error "
                                     "FROM outbox WHERE seq IN (SELECT MAX(seq) FROM outbox GROUP BY target) "
                                     "ORDER BY target_display")]
        return {"sources": sources, "incidents": incidents, "outbox": outbox, "log_gaps": gaps, "targets": targets}


def _open_db_file(path: Path) -> tuple[int, int]:
    """Create ``path`` 0600 before SQLite does (it gives -wal and -shm the same mode), never through a link.

    Returns its (dev, inode). An existing empty file is named in a warning: counters start from zero.
    """
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
            created = True
        except FileExistsError:
            fd = os.open(path, flags)
            created = False
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeStateDir(f"state_dir: {path} is a symbolic link; snapwatch does not follow it, so that "
                                 "nobody can make it write elsewhere: remove the link") from None
        reason = f"cannot open {path}: {exc.strerror or exc}"
        raise os_unavailable(exc, reason) from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeStateDir(f"state_dir: {path} is not a regular file")
        if stat.S_IMODE(st.st_mode) & 0o077:
            with contextlib.suppress(OSError):  # a read-only filesystem: nobody can write it either
                os.fchmod(fd, 0o600)
        wal = path.with_name(path.name + "-wal")
        if not created and st.st_size == 0 and not (wal.exists() and wal.stat().st_size > 0):
            log.warning("state file %s is empty (0 bytes) although snapwatch did not just create it: positions "
                        "and counters start again from zero; if it was truncated, restore it from a backup", path)
        return st.st_dev, st.st_ino
    finally:
        os.close(fd)


def _tokens(history: object) -> dict[str, dict[str, int]]:
    """Per token fingerprint, the 2xx and 401/403 answers a stored history counted (over every pixel)."""
    if not isinstance(history, dict):
        return {}
    try:
        answers = History.restore(history).per_token()
    except ValueError:
        return {}
    return {fp: {"accepted": a.accepted, "rejected": a.rejected} for fp, a in sorted(answers.items())}


def _counts(text: str) -> dict[str, object]:
    """An incident row's stored counts (``responses``, ``by_status``), when it has them."""
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    counts: dict[str, object] = {k: data[k] for k in ("responses", "by_status") if k in data}
    pairs = counts.get("by_status")
    if isinstance(pairs, list):  # the incident's stored form keeps (status, count) pairs
        counts["by_status"] = {str(status): n for status, n in pairs}
    return counts
