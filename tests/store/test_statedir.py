"""The state directory: what is refused and why, what is tightened, and the one lock a daemon holds."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from snapwatch.errors import StateLockedError
from snapwatch.store.state import Store
from snapwatch.store.statedir import DaemonLock, UnsafeStateDir, holder, prepare, problems


def test_a_missing_directory_is_fine_and_created_0700(tmp_path: Path) -> None:
    path = tmp_path / "a" / "state"
    assert problems(path) == []
    assert not path.exists()  # looking changes nothing
    assert prepare(path) == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o700


def test_what_others_control_is_refused_and_what_is_ours_tightened(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    (found,) = problems(shared)
    assert "shared directory" in found and "1777" in found
    with pytest.raises(UnsafeStateDir) as refused:
        prepare(shared)
    assert refused.value.exit_code == 78
    ours = tmp_path / "ours"
    ours.mkdir()
    ours.chmod(0o777)
    assert problems(ours) == []
    prepare(ours)
    assert stat.S_IMODE(ours.stat().st_mode) == 0o700


def test_links_and_odd_files_are_named(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "state.db-wal").symlink_to(tmp_path / "elsewhere")
    (found,) = problems(state)
    assert "state.db-wal is a symbolic link" in found
    os.unlink(state / "state.db-wal")
    (state / "state.db").mkdir()
    assert problems(state) == [f"{state / 'state.db'} is not a regular file"]
    file_dir = tmp_path / "file"
    file_dir.write_text("x")
    assert problems(file_dir) == [f"{file_dir} exists and is not a directory"]
    to_file = tmp_path / "to-file"
    to_file.symlink_to(file_dir)
    assert "which is not a directory" in problems(to_file)[0]


def test_the_lock_is_held_once_names_its_pid_and_is_free_again_after_release(tmp_path: Path) -> None:
    state = prepare(tmp_path / "state")
    assert holder(state) is None
    lock = DaemonLock.acquire(state)
    try:
        assert holder(state) == os.getpid()
        with pytest.raises(StateLockedError, match=f"pid {os.getpid()}") as second:
            DaemonLock.acquire(state)
        assert second.value.exit_code == 75
        with Store.open(state) as store:  # readers do not need the lock
            assert store.status()["sources"] == []
    finally:
        lock.release()
    assert holder(state) is None
    DaemonLock.acquire(state).release()
