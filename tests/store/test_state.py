"""The SQLite state store: permissions, schema versions, one-transaction batches, status shape."""

from __future__ import annotations

import sqlite3
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from snapwatch.ingest.tokens import fingerprint
from snapwatch.model import Checkpoint, EnvState, Gap
from snapwatch.store.schema import SCHEMA_VERSION, StateError
from snapwatch.store.state import IncidentRow, Store
from tests.helpers.tokens import assert_no_secret

T0 = datetime(2025, 12, 3, 23, 35, 17, tzinfo=UTC)


def cp(offset: int, path: str = "/var/log/app.log") -> Checkpoint:
    return Checkpoint(path, 2049, 1234, offset, "ab" * 32, 1_700_000_000_000_000_000)


def test_directory_and_file_modes(tmp_path: Path) -> None:
    with Store.open(tmp_path / "state") as store:
        store.commit_batch(cp(10), status_counts={"200": 1})
        assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
        for name in ("state.db", "state.db-wal"):
            assert stat.S_IMODE((tmp_path / "state" / name).stat().st_mode) == 0o600
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_checkpoint_and_counters_accumulate_and_survive_reopen(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        assert store.checkpoint("/var/log/app.log") is None
        store.commit_batch(cp(100), status_counts={"200": 3, "401": 2}, requests=5, last_record_at=T0)
        store.commit_batch(cp(250), status_counts={"401": 4}, requests=4,
                           last_record_at=T0 - timedelta(minutes=1))  # older: does not move back
    with Store.open(tmp_path) as store:
        assert store.checkpoint("/var/log/app.log") == cp(250)
        assert store.counters("/var/log/app.log") == {"200": 3, "401": 6}
        assert store.requests("/var/log/app.log") == 9
        status = store.status()
    assert status == {
        "sources": [{"path": "/var/log/app.log", "inode": 1234, "offset": 250,
                     "responses": {"200": 3, "401": 6}, "requests": 9, "last_record_at": T0.isoformat(),
                     "skipped": {}, "tokens": {}}],
        "incidents": [],
        "outbox": {"pending": 0, "delivered": 0, "failed": 0},
        "log_gaps": [],
        "targets": [],
    }


def test_a_failing_batch_moves_neither_checkpoint_nor_counters(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.commit_batch(cp(100), status_counts={"200": 1})
        bad = IncidentRow("x", "auth-failures", "/var/log/app.log", "maybe", T0)  # violates CHECK
        with pytest.raises(sqlite3.IntegrityError):
            store.commit_batch(cp(200), status_counts={"200": 5}, incident_changes=[bad])
        assert store.checkpoint("/var/log/app.log") == cp(100)
        assert store.counters("/var/log/app.log") == {"200": 1}


def test_incidents_memory_gaps(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        opened = IncidentRow("i1", "auth-failures", "/var/log/app.log", "open", T0, verdict="token-drift")
        store.commit_batch(cp(1), incident_changes=[opened], source_memory={"streak": 4},
                           gaps=[Gap("/var/log/app.log", "/var/log/app.log", 1, 2, None, T0, None, "gone")])
        assert store.status()["incidents"] == [
            {"id": "i1", "rule": "auth-failures", "source": "/var/log/app.log", "state": "open",
             "opened_at": T0.isoformat(), "verdict": "token-drift"}]
        resolved = IncidentRow("i1", "auth-failures", "/var/log/app.log", "resolved", T0,
                                  T0 + timedelta(minutes=5), "token-drift")
        store.commit_batch(cp(2), incident_changes=[resolved], source_memory={"streak": 0})
        assert store.status()["incidents"] == []
        assert store.incidents() == [resolved]
        assert store.source_memory("/var/log/app.log") == {"streak": 0}
        (gap,) = store.gaps()
        assert gap.lost_bytes is None and gap.since == T0 and gap.reason == "gone"


def test_outbox_counted_by_state(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        with store.transaction() as c:
            c.executemany("INSERT INTO outbox (alert_id, target, target_display, message, state, created_at,"
                          " next_attempt_at) VALUES (?, 't', 't', '{}', ?, '', '')",
                          [("a", "pending"), ("b", "delivered"), ("c", "delivered"), ("d", "failed")])
        assert store.status()["outbox"] == {"pending": 1, "delivered": 2, "failed": 1}


def test_newer_schema_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    Store.open(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "state.db")
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StateError, match="newer than this snapwatch"):
        Store.open(tmp_path)


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "state.db").write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StateError, match="not a usable snapwatch state file"):
        Store.open(tmp_path)


def test_no_token_in_the_state_file(tmp_path: Path, canvas_token: str) -> None:
    fp = fingerprint(canvas_token)
    with Store.open(tmp_path) as store:
        store.commit_batch(cp(5), source_memory={"token": fp})
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert fp.encode() in data  # the fingerprint is there …
    assert_no_secret(data, canvas_token)  # … the token is not


def test_a_version_4_file_gains_the_token_source_history_and_keeps_its_alert_rows(tmp_path: Path) -> None:
    """Migration 5: ``env_changes``, and ``alert_state`` rebuilt (its CHECK now allows 'inhibited') with every row."""
    from snapwatch.store.schema import MIGRATIONS

    path = tmp_path / "state.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for step in MIGRATIONS[:3]:
        step(conn)
    conn.execute("PRAGMA user_version=3")
    conn.execute("INSERT INTO alert_state (incident_id, rule, source, opened_us, state, grp, due_us, opened, incident)"
                 " VALUES ('i1', 'auth-failures', 'app.log', 1, 'open', 'i1', 2, 'sent', '{}')")
    conn.close()
    with Store.open(tmp_path) as store:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store.conn.execute("SELECT incident_id, opened, inhibited_by FROM alert_state").fetchall() == [
            ("i1", "sent", None)]
        store.conn.execute("UPDATE alert_state SET opened = 'inhibited', inhibited_by = 'i0'")
        with pytest.raises(sqlite3.IntegrityError):
            store.conn.execute("UPDATE alert_state SET opened = 'forgotten'")
        assert store.env_history() == []
        at = datetime(2025, 12, 3, 23, 0, tzinfo=UTC)
        assert store.record_env(EnvState(at, "3f9a1c0b7d2e", "SNAP_ACCESS_TOKEN in /srv/app/.env"))
        assert not store.record_env(EnvState(at, "3f9a1c0b7d2e", "SNAP_ACCESS_TOKEN in /srv/app/.env"))
    with Store.open(tmp_path) as store:  # fingerprints and times only, read back as written
        assert store.env_history() == [EnvState(at, "3f9a1c0b7d2e", "SNAP_ACCESS_TOKEN in /srv/app/.env")]
