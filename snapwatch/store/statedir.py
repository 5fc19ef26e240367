"""The state directory: checked before use, created 0700 or tightened, never followed through a planted link, locked.

``problems`` looks without touching anything (``check-config`` and ``run`` ask it alike); ``prepare``
creates or tightens the directory and refuses what ``problems`` refuses; ``DaemonLock`` is the one
lock a running daemon holds on the directory for its whole life.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import stat
import time
from pathlib import Path

from snapwatch.errors import EX_CONFIG, StateLockedError
from snapwatch.store.schema import StateError, StateUnavailable

log = logging.getLogger(__name__)

DB_NAME = "state.db"
LOCK_NAME = "snapwatch.lock"
_SIDE_FILES = (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", LOCK_NAME)
_TRANSIENT = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO, errno.EAGAIN, errno.EBUSY}


class UnsafeStateDir(StateError):
    """The state directory (or a file in it) is not safe or not usable as configured: a configuration problem."""

    exit_code = EX_CONFIG


def transient(exc: OSError) -> bool:
    """Whether an OS error about the state directory may go away by itself (disk full, read-only, I/O)."""
    return exc.errno in _TRANSIENT


def os_unavailable(exc: OSError, reason: str) -> StateError:
    """``reason`` as StateUnavailable when ``exc`` may go away by itself, else as StateError."""
    if not transient(exc):
        return StateError(reason)
    kind = {errno.ENOSPC: "full", errno.EDQUOT: "full", errno.EROFS: "read-only"}.get(exc.errno or 0, "io")
    return StateUnavailable(reason, kind)


def problems(state_dir: Path | str) -> list[str]:
    """What makes ``state_dir`` unusable or unsafe, one line each (empty when it is fine); changes nothing.

    A directory that can be tightened (it is this user's own) is not a problem; a read-only filesystem is
    not either: that is a state failure the daemon waits out, not a mistake in the configuration.
    """
    path = Path(state_dir)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return _creatable(path)
    except OSError as exc:
        return [f"{path}: cannot be examined: {exc.strerror or exc}"]
    real = path
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(path)
        try:
            st = os.stat(path)
        except OSError:
            return [f"{path} is a symbolic link to {target}, which does not exist: create {target}, "
                    "or point state_dir at a directory"]
        if not stat.S_ISDIR(st.st_mode):
            return [f"{path} is a symbolic link to {target}, which is not a directory"]
        real = Path(os.path.realpath(path))
    elif not stat.S_ISDIR(st.st_mode):
        return [f"{path} exists and is not a directory"]
    found = _unsafe(real, st)
    if not found and not os.access(real, os.W_OK | os.X_OK) and not _read_only_fs(real):
        found.append(f"{path} is not writable by this user (uid {os.geteuid()})")
    for name in _SIDE_FILES:
        found.extend(_file_problem(real / name))
    return found


def _creatable(path: Path) -> list[str]:
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return [f"{path} cannot be created: {parent} is not a directory"]
    if not os.access(parent, os.W_OK | os.X_OK) and not _read_only_fs(parent):
        return [f"{path} does not exist and cannot be created: {parent} is not writable by this user "
                f"(uid {os.geteuid()})"]
    return []


def _unsafe(path: Path, st: os.stat_result) -> list[str]:
    if not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return []
    mode = f"{stat.S_IMODE(st.st_mode):04o}"
    if st.st_mode & stat.S_ISVTX:
        return [f"{path} is a shared directory (mode {mode}, like /tmp) that others can write: "
                "give snapwatch a directory of its own, such as /var/lib/snapwatch"]
    if st.st_uid != os.geteuid():
        return [f"{path} can be written by others (mode {mode}) and belongs to uid {st.st_uid}, not to this "
                f"user (uid {os.geteuid()}): make it 0700 and this user's own"]
    return []  # this user's own: prepare() tightens it


def _file_problem(path: Path) -> list[str]:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return []
    except OSError as exc:
        return [f"{path}: cannot be examined: {exc.strerror or exc}"]
    if stat.S_ISLNK(st.st_mode):
        return [f"{path} is a symbolic link (to {os.readlink(path)}); snapwatch does not follow it, so that "
                "nobody can make it write elsewhere: remove the link"]
    if not stat.S_ISREG(st.st_mode):
        return [f"{path} is not a regular file"]
    return []


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def prepare(state_dir: Path | str) -> Path:
    """``state_dir`` created 0700 (or an existing one of this user's tightened to 0700); returns the real directory.

    Raises UnsafeStateDir (exit 78) for what ``problems`` reports, StateUnavailable when the filesystem
    refuses for now (full, read-only), StateError otherwise.
    """
    path = Path(state_dir)
    found = problems(path)
    if found:
        raise UnsafeStateDir(f"state_dir: {found[0]}")
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        real = Path(os.path.realpath(path))
        st = os.stat(real)
        if stat.S_IMODE(st.st_mode) & 0o077 and st.st_uid == os.geteuid():
            os.chmod(real, 0o700)
            log.warning("state directory %s was mode %04o; tightened to 0700", real, stat.S_IMODE(st.st_mode))
    except OSError as exc:
        reason = f"cannot use state directory {path}: {exc.strerror or exc}"
        raise os_unavailable(exc, reason) from exc
    return real


class DaemonLock:
    """An exclusive ``flock`` on ``state_dir/snapwatch.lock``, held for the daemon's life; the file names its pid."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def acquire(cls, directory: Path) -> DaemonLock:
        """Take the lock; raises StateLockedError (exit 75) naming the pid of the snapwatch that holds it."""
        path = directory / LOCK_NAME
        fd = _open_lock(path, create=True)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder_pid(fd)
            os.close(fd)
            who = f"pid {pid}" if pid else "pid unknown"
            raise StateLockedError(f"another snapwatch ({who}) is running on the state directory {directory}; "
                                   "stop it first, or give this one its own state_dir") from None
        with contextlib.suppress(OSError):  # a read-only file still locks; the pid is a courtesy
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(fd, path)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # the file stays: removing it would let two daemons lock two different files
            self._fd = None


def holder(directory: Path | str) -> int | None:
    """The pid of the snapwatch that holds ``directory``'s lock (0 when unknown), None when none does."""
    try:
        fd = _open_lock(Path(directory) / LOCK_NAME, create=False)
    except (OSError, StateError):
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder_pid(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _open_lock(path: Path, *, create: bool) -> int:
    flags = os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(path, flags | os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeStateDir(f"state_dir: {path} is a symbolic link; snapwatch does not follow it: "
                                 "remove the link") from None
        if exc.errno not in (errno.EROFS, errno.EACCES) or not path.exists():
            if not create:
                raise
            reason = f"cannot create the lock file {path}: {exc.strerror or exc}"
            raise os_unavailable(exc, reason) from exc
    return os.open(path, flags | os.O_RDONLY)  # flock needs no write access


def _holder_pid(fd: int) -> int:
    for _attempt in range(20):  # the holder writes its pid just after it locks
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if text.isdigit():
            return int(text)
        time.sleep(0.01)
    return 0
