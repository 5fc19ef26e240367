"""The state file's schema: one ordered list of migrations, the version kept in ``PRAGMA user_version``.

Every table of ``state.db`` is created here and nowhere else. Migration N brings a file at version N-1
to version N; a file is brought up to date in one transaction per step, whoever opens it first (the
store, or a policy or outbox handed a bare connection in tests). To change the schema, append a step:
never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from snapwatch.errors import SnapwatchError


class StateError(SnapwatchError):
    """The state file cannot be used (newer schema, not a database, no permission)."""


class StateUnavailable(StateError):
    """The state file cannot be written for now (disk full, read-only, locked by another process, I/O error).

    Nothing was saved; what was saved before is intact. Waiting and trying again may succeed. ``kind`` is
    ``full``, ``read-only``, ``locked``, ``io`` or ``other``.
    """

    def __init__(self, message: str, kind: str = "other") -> None:
        super().__init__(message)
        self.kind = kind


def unavailable(exc: sqlite3.OperationalError, where: object = "the state file") -> StateUnavailable:
    """``exc`` (SQLite could not write or open the file) as a one-line StateUnavailable."""
    text = str(exc)
    reasons = {"database or disk is full": ("the disk is full", "full"),
               "readonly database": ("it is read-only", "read-only"),
               "database is locked": ("another process holds a lock on it", "locked"),
               "disk I/O error": ("a disk I/O error", "io"),
               "unable to open database file": ("it cannot be opened", "io")}
    reason, kind = next((r for needle, r in reasons.items() if needle in text), (text, "other"))
    return StateUnavailable(f"{where}: {reason} ({text})", kind)


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


def _v1_sources_and_incidents(conn: sqlite3.Connection) -> None:
    _script(conn, """
    CREATE TABLE IF NOT EXISTS sources (
        path TEXT PRIMARY KEY, dev INTEGER NOT NULL, inode INTEGER NOT NULL, offset INTEGER NOT NULL,
        fingerprint TEXT NOT NULL, mtime_ns INTEGER NOT NULL DEFAULT 0, requests INTEGER NOT NULL DEFAULT 0,
        last_record_at TEXT);
    CREATE TABLE IF NOT EXISTS counters (
        path TEXT NOT NULL, status TEXT NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (path, status));
    CREATE TABLE IF NOT EXISTS detector_snapshots (path TEXT PRIMARY KEY, json TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS incidents (
        id TEXT PRIMARY KEY, rule TEXT NOT NULL, source TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('open', 'resolved')),
        opened_at TEXT NOT NULL, resolved_at TEXT, verdict TEXT, json TEXT NOT NULL DEFAULT '{}');
    CREATE TABLE IF NOT EXISTS token_history (
        fingerprint TEXT NOT NULL, pixel TEXT NOT NULL, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL,
        accepted INTEGER NOT NULL DEFAULT 0, rejected INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (fingerprint, pixel));
    CREATE TABLE IF NOT EXISTS log_gaps (
        id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL, dev INTEGER, inode INTEGER,
        lost_bytes INTEGER, since TEXT, until TEXT, reason TEXT NOT NULL);
    """)


def _v2_alerts_and_outbox(conn: sqlite3.Connection) -> None:
    # Files of version 1 may already hold these tables (the alert policy and the outbox used to create
    # their own): IF NOT EXISTS keeps their rows, and a pre-flaps alert_state gains the column.
    _script(conn, """
    CREATE TABLE IF NOT EXISTS alert_state (incident_id TEXT PRIMARY KEY, rule TEXT NOT NULL,
        source TEXT NOT NULL, opened_us INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('open', 'resolved')),
        grp TEXT NOT NULL,                -- the OPENED group: the id of the incident that started it
        due_us INTEGER NOT NULL,          -- when the group's OPENED alert is due
        opened TEXT NOT NULL CHECK (opened IN ('pending', 'sent', 'held', 'swallowed')),
        announced INTEGER NOT NULL DEFAULT 0,  -- some alert about it was handed out
        reminder_us INTEGER, reminder_seq INTEGER NOT NULL DEFAULT 0,
        update_owed INTEGER NOT NULL DEFAULT 0, update_seq INTEGER NOT NULL DEFAULT 0,
        sent_key TEXT,                    -- the verdict and probe findings as last handed out
        resolved TEXT NOT NULL DEFAULT 'no' CHECK (resolved IN ('no', 'owed', 'sent', 'skipped')),
        closed_us INTEGER, incident TEXT NOT NULL, diagnosis TEXT,
        flaps INTEGER NOT NULL DEFAULT 0); -- an announced blip: the blips of its rule and source in the hour
    CREATE INDEX IF NOT EXISTS alert_state_pending ON alert_state (opened, source, due_us);
    CREATE TABLE IF NOT EXISTS alert_sent (at_us INTEGER NOT NULL, alert_id TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS alert_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT OR IGNORE INTO alert_meta VALUES ('held', 0);
    INSERT OR IGNORE INTO alert_meta VALUES ('held_seq', 0);
    DELETE FROM alert_meta WHERE key = 'schema';
    CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT,
        alert_id TEXT NOT NULL, target TEXT NOT NULL, target_display TEXT NOT NULL,
        message TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'delivered', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL, next_attempt_at TEXT NOT NULL,
        delivered_at TEXT, last_error TEXT, UNIQUE (alert_id, target));
    CREATE INDEX IF NOT EXISTS outbox_state ON outbox (state, target, created_at, seq);
    """)
    if "flaps" not in {c[1] for c in conn.execute("PRAGMA table_info(alert_state)")}:
        conn.execute("ALTER TABLE alert_state ADD COLUMN flaps INTEGER NOT NULL DEFAULT 0")


def _v3_source_memory(conn: sqlite3.Connection) -> None:
    # The per-token history table was written but never read; a source's detector and history snapshot
    # is its memory, and the table is named for it.
    conn.execute("DROP TABLE IF EXISTS token_history")
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'detector_snapshots'").fetchone():
        conn.execute("ALTER TABLE detector_snapshots RENAME TO source_memory")
    else:
        conn.execute("CREATE TABLE IF NOT EXISTS source_memory (path TEXT PRIMARY KEY, json TEXT NOT NULL)")


def _v4_history(conn: sqlite3.Connection) -> None:
    # What the report draws: responses per minute and status, and each switch of the request token.
    _script(conn, """
    CREATE TABLE IF NOT EXISTS traffic_minutes (
        path TEXT NOT NULL, minute TEXT NOT NULL, status TEXT NOT NULL, count INTEGER NOT NULL,
        PRIMARY KEY (path, minute, status));
    CREATE INDEX IF NOT EXISTS traffic_minutes_time ON traffic_minutes (minute);
    CREATE TABLE IF NOT EXISTS token_switches (
        path TEXT NOT NULL, at TEXT NOT NULL, before TEXT, after TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS token_switches_time ON token_switches (at);
    """)


def _v5_env_changes_and_inhibition(conn: sqlite3.Connection) -> None:
    # What the token source held, and since when (fingerprints only): an incident is judged against the
    # source as it was at its time. alert_state's CHECK gains 'inhibited' (SQLite cannot alter a CHECK, so
    # the table is rebuilt with its rows), and inhibited_by names the incident that explains such a one.
    _script(conn, """
    CREATE TABLE IF NOT EXISTS env_changes (at TEXT NOT NULL, fingerprint TEXT, source TEXT NOT NULL);
    CREATE TABLE alert_state_v5 (incident_id TEXT PRIMARY KEY, rule TEXT NOT NULL,
        source TEXT NOT NULL, opened_us INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('open', 'resolved')),
        grp TEXT NOT NULL, due_us INTEGER NOT NULL,
        opened TEXT NOT NULL CHECK (opened IN ('pending', 'sent', 'held', 'swallowed', 'inhibited')),
        announced INTEGER NOT NULL DEFAULT 0,
        reminder_us INTEGER, reminder_seq INTEGER NOT NULL DEFAULT 0,
        update_owed INTEGER NOT NULL DEFAULT 0, update_seq INTEGER NOT NULL DEFAULT 0,
        sent_key TEXT,
        resolved TEXT NOT NULL DEFAULT 'no' CHECK (resolved IN ('no', 'owed', 'sent', 'skipped')),
        closed_us INTEGER, incident TEXT NOT NULL, diagnosis TEXT,
        flaps INTEGER NOT NULL DEFAULT 0,
        inhibited_by TEXT);               -- the open incident this one is folded into (opened = 'inhibited')
    INSERT INTO alert_state_v5 (incident_id, rule, source, opened_us, state, grp, due_us, opened, announced,
        reminder_us, reminder_seq, update_owed, update_seq, sent_key, resolved, closed_us, incident, diagnosis, flaps)
        SELECT incident_id, rule, source, opened_us, state, grp, due_us, opened, announced, reminder_us, reminder_seq,
        update_owed, update_seq, sent_key, resolved, closed_us, incident, diagnosis, flaps FROM alert_state;
    DROP TABLE alert_state;
    ALTER TABLE alert_state_v5 RENAME TO alert_state;
    CREATE INDEX IF NOT EXISTS alert_state_pending ON alert_state (opened, source, due_us);
    """)


def _v6_silences(conn: sqlite3.Connection) -> None:
    # Mutes set with `snapwatch silence add`: a rule (or every rule) on a source (or every source) until ends_at.
    _script(conn, """
    CREATE TABLE IF NOT EXISTS silences (
        id TEXT PRIMARY KEY, rule TEXT, source TEXT, starts_at TEXT NOT NULL, ends_at TEXT NOT NULL,
        comment TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL);
    """)


def _v7_memory_rows(conn: sqlite3.Connection) -> None:
    # The parts of a source's memory that grow with it (the error-rate window's buckets, the accepted runs),
    # one row each, so that a save writes what changed, not the whole window. ``part`` names where the rows
    # stand in the memory document ("detector/error_window/rows"); each row's JSON starts with its seq.
    _script(conn, """
    CREATE TABLE IF NOT EXISTS memory_rows (
        path TEXT NOT NULL, part TEXT NOT NULL, seq INTEGER NOT NULL, json TEXT NOT NULL,
        PRIMARY KEY (path, part, seq)) WITHOUT ROWID;
    """)


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _v1_sources_and_incidents,
    _v2_alerts_and_outbox,
    _v3_source_memory,
    _v4_history,
    _v5_env_changes_and_inhibition,
    _v6_silences,
    _v7_memory_rows,
)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, where: object = "the state file") -> None:
    """Bring the database on ``conn`` to SCHEMA_VERSION (a no-op when it is there).

    Raises StateError when it was written by a newer snapwatch (its version is higher than this one's).
    """
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise StateError(
            f"{where} has schema version {version}, newer than this snapwatch knows "
            f"({SCHEMA_VERSION}); upgrade snapwatch or point state_dir elsewhere")
    for target in range(version + 1, SCHEMA_VERSION + 1):
        with joined_transaction(conn):
            MIGRATIONS[target - 1](conn)
            conn.execute(f"PRAGMA user_version={target}")


def _script(conn: sqlite3.Connection, script: str) -> None:
    # Not conn.executescript: it commits the open transaction first, and a step must commit together
    # with its version number.
    for statement in _statements(script):
        conn.execute(statement)


def _statements(script: str) -> Iterator[str]:
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    for statement in "\n".join(lines).split(";"):
        if statement.strip():
            yield statement
