"""Following log files exactly once: rotation, truncation, catch-up after downtime, checkpoints."""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import glob
import gzip
import hashlib
import logging
import os
import re
import zlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import BinaryIO, Protocol

from watchfiles import awatch

from snapwatch.config import SourceConfig
from snapwatch.linebuf import LineSplitter

log = logging.getLogger(__name__)

BLOCK = 1 << 20  # reads are this big: per-block work only, never per line
FP_BYTES = 64  # how many bytes before a checkpoint name the file's content
_CHECK_BYTES = 128  # bytes compared on every poll to notice a truncated-and-regrown file
_MAX_POLL_BYTES = 16 * BLOCK  # one poll returns at most about this much, so memory stays flat


def fingerprint(data: bytes) -> str:
    """Hex SHA-256 of the (up to ``FP_BYTES``) bytes just before a checkpoint offset."""
    return hashlib.sha256(data[-FP_BYTES:]).hexdigest()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where reading of ``path`` resumes: just after the last complete line handed out.

    ``(dev, inode)`` names the file holding that position: the file at ``path``, or a rotated backup
    while it is read. ``fingerprint`` (see ``fingerprint()``) tells that file from a truncated,
    regrown or replaced one with the same inode, and finds it among compressed backups.
    ``mtime_ns`` is the file's modification time when it was read. ``inode == 0`` means "the file
    was read completely and is gone: read whatever appears at ``path`` from its beginning".
    """

    path: str
    dev: int
    inode: int
    offset: int
    fingerprint: str
    mtime_ns: int = 0


@dataclass(frozen=True, slots=True)
class Chunk:
    """Complete lines read from one file, and the checkpoint to commit once they are processed.

    ``data`` may be empty: such a chunk only moves the checkpoint (initial position, next file).
    ``file`` is the name the bytes were read under (a rotated backup during catch-up).
    """

    source: str
    path: str
    file: str
    dev: int
    inode: int
    data: bytes
    start_offset: int
    end_offset: int
    checkpoint: Checkpoint


@dataclass(frozen=True, slots=True)
class Gap:
    """Lines lost before they could be read (the ``log-gap`` finding).

    ``lost_bytes`` is None when unknown; otherwise a lower bound. ``since``/``until`` bound the time
    the lost lines were written, from file modification times, when known.
    """

    source: str
    path: str
    dev: int
    inode: int
    lost_bytes: int | None
    since: datetime | None
    until: datetime | None
    reason: str


class NoticeKind(StrEnum):
    ABSENT = "absent"
    APPEARED = "appeared"
    ROTATED = "rotated"
    TRUNCATED = "truncated"
    DELETED = "deleted"
    CATCH_UP = "catch-up"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Notice:
    """Something about a followed file worth one log line (said once per occurrence)."""

    source: str
    path: str
    kind: NoticeKind
    detail: str


@dataclass(frozen=True, slots=True)
class Quiet:
    """No new bytes for ``flush_after`` since the last data: a held record may be flushed now."""

    source: str


Event = Chunk | Gap | Notice


class Splitter(Protocol):
    @property
    def pending(self) -> int: ...
    def push(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


def _mtime(ns: int | None) -> datetime | None:
    return datetime.fromtimestamp(ns / 1e9, UTC) if ns else None


@dataclass(frozen=True, slots=True)
class _Cand:
    name: str
    dev: int
    ino: int
    size: int
    mtime_ns: int
    gz: bool
    head: bytes = b""  # the first bytes: an inode number freed by a deleted backup may name a new file

    @property
    def ident(self) -> tuple[int, int, bytes]:
        return (self.dev, self.ino, self.head)


_HEAD_BYTES = 64
_NUMBERED = r"\.(\d+)(\.gz)?$"
_DATED = r"-(\d{8}(?:\d{2})?(?:-\d+)?)(\.gz)?$"


def rotated_backups(path: str) -> list[_Cand]:
    """Rotated backups of ``path``, newest first: ``.1``, ``.1.gz``, ``.2`` … then ``-YYYYMMDD[.gz]``."""
    directory, base = os.path.split(path)
    numbered = re.compile(re.escape(base) + _NUMBERED)
    dated = re.compile(re.escape(base) + _DATED)
    for _attempt in range(10):
        try:
            names = os.listdir(directory or ".")
        except OSError:
            return []
        by_index: list[tuple[int, str, bool]] = []
        by_date: list[tuple[str, str, bool]] = []
        for name in names:
            if m := numbered.match(name):
                by_index.append((int(m.group(1)), name, bool(m.group(2))))
            elif m := dated.match(name):
                by_date.append((m.group(1), name, bool(m.group(2))))
        ordered = [(n, gz) for _, n, gz in sorted(by_index)]
        ordered += [(n, gz) for _, n, gz in sorted(by_date, reverse=True)]
        out: list[_Cand] = []
        try:
            for name, gz in ordered:
                full = os.path.join(directory, name)
                fd = os.open(full, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    st, head = os.fstat(fd), os.pread(fd, _HEAD_BYTES, 0)
                finally:
                    os.close(fd)
                out.append(_Cand(full, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, gz, head))
        except FileNotFoundError:
            continue  # a rotation renamed files while we looked: look again
        if len({(c.dev, c.ino) for c in out}) < len(out):
            continue  # one file under two names: it moved up while we looked; look again
        return out
    return []


class _Open:
    """One file of the read chain, open by descriptor (or a gzip stream), with its split state."""

    __slots__ = ("cp_at", "dev", "fd", "gz", "ino", "last_size", "mtime_ns", "name", "raw", "read_at",
                 "recent", "splitter")

    def __init__(self, name: str, *, fd: int | None, raw: BinaryIO | None, dev: int, ino: int,
                 splitter: Splitter) -> None:
        self.name, self.fd, self.raw, self.dev, self.ino = name, fd, raw, dev, ino
        self.gz = gzip.GzipFile(fileobj=raw, mode="rb") if raw is not None else None
        self.splitter = splitter
        self.read_at = 0  # next raw byte to read
        self.cp_at = 0  # just after the last complete line handed out
        self.recent = b""  # raw bytes [max(cp_at - FP_BYTES, 0), read_at)
        self.last_size = 0
        self.mtime_ns = 0

    def seek(self, offset: int) -> None:
        """Position at ``offset`` (a line boundary), loading the fingerprint bytes before it."""
        start = max(offset - FP_BYTES, 0)
        if self.fd is not None:
            self.recent = os.pread(self.fd, offset - start, start)
        else:
            assert self.gz is not None
            self.gz.seek(start)
            self.recent = self.gz.read(offset - start)
        self.read_at = self.cp_at = start + len(self.recent)

    def read(self, n: int) -> bytes:
        if self.fd is not None:
            return os.pread(self.fd, n, self.read_at)
        assert self.gz is not None
        return self.gz.read(n)

    def has_data(self) -> bool:
        if self.fd is None:
            return True
        return os.fstat(self.fd).st_size > 0

    def close(self) -> None:
        if self.gz is not None:
            self.gz.close()
        if self.raw is not None:
            self.raw.close()  # GzipFile leaves the file object it was given open
        if self.fd is not None:
            os.close(self.fd)
        self.fd = self.gz = self.raw = None


def _matches(c: _Cand, offset: int, fp: str) -> bool:
    """Whether the candidate holds ``fp`` before ``offset`` (it is, or copies, the checkpointed file)."""
    start = max(offset - FP_BYTES, 0)
    try:
        if not c.gz:
            if c.size < offset:
                return False
            with open(c.name, "rb") as f:
                f.seek(start)
                return fingerprint(f.read(offset - start)) == fp
        with gzip.open(c.name, "rb") as g:
            g.seek(start)
            data = g.read(offset - start)
            return len(data) == offset - start and fingerprint(data) == fp
    except (OSError, EOFError, zlib.error):
        return False


class FileTracker:
    """Follows one path exactly once; ``poll()`` reads whatever is new and never blocks.

    The chain holds, in order, the files still to be read: a rotated-away file stays open (by
    descriptor) and is read to its end before the next one; a file is left only once a newer one
    holds data, so a writer that still finishes a line in the old file loses nothing.
    """

    def __init__(self, source: str, path: str, checkpoint: Checkpoint | None, *, start_at: str,
                 splitter_factory: Callable[[], Splitter], block_size: int = BLOCK) -> None:
        self.source, self.path = source, path
        self._cp = checkpoint
        self._start_at = start_at  # "end" | "beginning": only while there is no checkpoint
        self._new = splitter_factory
        self._block = block_size
        self._chain: list[_Open] = []
        # Backups that predate the live file, by (dev, inode, first bytes): a backup deleted by the
        # rotation frees its inode for a new file, which must not be taken for the old one.
        self._known_old: set[tuple[int, int, bytes]] = set()
        self._said_absent = False
        self._started = False
        self.behind = False  # the last poll stopped at its byte budget: poll again soon

    # -- opening -------------------------------------------------------------------------------

    def _open(self, name: str, gz: bool, expect: tuple[int, int] | None) -> _Open | None:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        st = os.fstat(fd)
        if expect is not None and (st.st_dev, st.st_ino) != expect:
            os.close(fd)  # renamed under us; the next poll looks again
            return None
        raw = os.fdopen(fd, "rb") if gz else None
        f = _Open(name, fd=None if gz else fd, raw=raw, dev=st.st_dev, ino=st.st_ino, splitter=self._new())
        f.mtime_ns = st.st_mtime_ns
        return f

    def _scan(self) -> list[_Cand]:
        """Rotated backups not already in the chain, newest first."""
        chain_ids = {(f.dev, f.ino) for f in self._chain}
        return [c for c in rotated_backups(self.path) if (c.dev, c.ino) not in chain_ids]

    def _start(self, out: list[Event], st: os.stat_result) -> None:
        """First look at the path: position from the checkpoint, or from ``start_at``."""
        cp = self._cp
        cands = rotated_backups(self.path)
        self._known_old = {c.ident for c in cands}
        if cp is None or cp.inode == 0:
            live = self._open(self.path, False, None)
            if live is None:
                return
            if cp is None and self._start_at == "end" and not self._started:
                live.seek(_last_line_end(live))
            self._chain = [live]
            out.append(self._chunk(live, b"", live.cp_at))
            return
        if (st.st_dev, st.st_ino) == (cp.dev, cp.inode) and st.st_size >= cp.offset:
            live = self._open(self.path, False, (cp.dev, cp.inode))
            if live is not None:
                live.seek(cp.offset)
                if fingerprint(live.recent) == cp.fingerprint:
                    self._chain = [live]
                    return
                live.close()
        # The checkpointed file is no longer (intact) at the path: find it among the backups. The live
        # file is opened before the backups are listed, and the listing is taken again when a backup
        # was renamed before it could be opened: a rotation meanwhile must not hide a file.
        for _attempt in range(5):
            chain = self._catch_up_chain(out, cp, st)
            if chain is not None:
                break
        else:
            chain = []
            out.append(Notice(self.source, self.path, NoticeKind.ERROR, "the backups kept moving; looking again"))
        self._chain = chain
        if chain:
            out.append(self._chunk(chain[0], b"", chain[0].cp_at))

    def _catch_up_chain(self, out: list[Event], cp: Checkpoint, st: os.stat_result) -> list[_Open] | None:
        """The files to read after downtime, oldest first; None when a rotation moved one meanwhile."""
        live = self._open(self.path, False, None)
        cands = rotated_backups(self.path)
        self._known_old = {c.ident for c in cands}
        if live is not None:
            cands = [c for c in cands if (c.dev, c.ino) != (live.dev, live.ino)]
        found = next((i for i, c in enumerate(cands) if (c.dev, c.ino) == (cp.dev, cp.inode)
                      and _matches(c, cp.offset, cp.fingerprint)), None)
        if found is None and cp.offset > 0:
            found = next((i for i, c in enumerate(cands) if _matches(c, cp.offset, cp.fingerprint)), None)
        chain: list[_Open] = []
        said: list[Event] = []
        if found is not None:
            c = cands[found]
            f = self._open(c.name, c.gz, (c.dev, c.ino))
            if f is None:
                self._abandon(chain, live)
                return None
            f.seek(cp.offset)
            chain.append(f)
            said.append(Notice(self.source, self.path, NoticeKind.CATCH_UP,
                               f"resuming in {c.name} at byte {cp.offset}"))
            newer = cands[:found]
        else:
            newer = [c for c in cands if c.mtime_ns > cp.mtime_ns]
            until = min((c.mtime_ns for c in newer), default=st.st_mtime_ns)
            said.append(Gap(self.source, self.path, cp.dev, cp.inode, None, _mtime(cp.mtime_ns), _mtime(until),
                            "the checkpointed file is gone (rotated away or deleted while stopped)"))
        for c in reversed(newer):
            f = self._open(c.name, c.gz, (c.dev, c.ino))
            if f is None:
                self._abandon(chain, live)
                return None
            chain.append(f)
        if live is not None:
            chain.append(live)
        out.extend(said)
        return chain

    @staticmethod
    def _abandon(chain: list[_Open], live: _Open | None) -> None:
        for f in [*chain, live]:
            if f is not None:
                f.close()

    # -- polling -------------------------------------------------------------------------------

    def poll(self, budget: int = _MAX_POLL_BYTES) -> list[Event]:
        """Read every file of the chain as far as it goes; return the chunks, gaps and notices."""
        out: list[Event] = []
        try:
            st: os.stat_result | None = os.stat(self.path)
        except OSError:
            st = None
        if not self._chain:
            if st is None:
                if not self._said_absent and not self._started:
                    out.append(Notice(self.source, self.path, NoticeKind.ABSENT, "waiting for it to appear"))
                self._said_absent = True
                return out
            if self._said_absent or self._started:
                out.append(Notice(self.source, self.path, NoticeKind.APPEARED, "reading from its beginning"))
                if self._cp is None:
                    self._start_at = "beginning"
            self._start(out, st)
            self._started = True
            self._said_absent = False
        elif st is not None and (st.st_dev, st.st_ino) not in {(f.dev, f.ino) for f in self._chain}:
            self._rotated(out)
        elif st is not None and (st.st_dev, st.st_ino) == (self._chain[-1].dev, self._chain[-1].ino):
            self._check_truncated(out)
        self.behind = False
        self._read_chain(out, budget, st)
        return out

    def _rotated(self, out: list[Event]) -> None:
        """A new file is at the path: queue the backups newer than ours, then the new file."""
        # Open the new file before listing the backups: a rotation in between then shows the file just
        # opened among the backups (it is queued last anyway) instead of hiding the one that was live.
        live = self._open(self.path, False, None)
        if live is not None and (live.dev, live.ino) in {(f.dev, f.ino) for f in self._chain}:
            live.close()
            live = None
        skip = {(f.dev, f.ino) for f in self._chain}
        if live is not None:
            skip.add((live.dev, live.ino))
        for _attempt in range(5):  # a backup renamed before it was opened: list them again
            backups = rotated_backups(self.path)
            newer = [c for c in backups if (c.dev, c.ino) not in skip and c.ident not in self._known_old
                     and not c.gz]
            opened = [self._open(c.name, False, (c.dev, c.ino)) for c in reversed(newer)]
            if all(f is not None for f in opened) or _attempt == 4:
                break
            self._abandon([f for f in opened if f is not None], None)
        out.append(Notice(self.source, self.path, NoticeKind.ROTATED,
                          f"finishing the old file, then {len(newer)} rotated file(s) and the new one"))
        self._chain.extend(f for f in opened if f is not None)
        if live is not None:
            self._chain.append(live)
        self._known_old = {c.ident for c in backups}

    def _check_truncated(self, out: list[Event]) -> None:
        """copytruncate and friends: the live file is shorter, or regrew with other bytes."""
        f = self._chain[-1]
        if f.fd is None:
            return
        st = os.fstat(f.fd)
        base = max(f.cp_at - FP_BYTES, 0)
        n = min(len(f.recent), _CHECK_BYTES)
        if st.st_size >= f.read_at and os.pread(f.fd, n, base) == f.recent[:n]:
            return
        out.append(Notice(self.source, self.path, NoticeKind.TRUNCATED, "reading it again from the start"))
        fp = fingerprint(f.recent[: f.cp_at - base])
        cands = self._scan()
        found = None
        if f.cp_at > 0:
            found = next((i for i, c in enumerate(cands) if _matches(c, f.cp_at, fp)), None)
        insert: list[_Open] = []
        if found is not None:
            for i in range(found, -1, -1):
                c = cands[i]
                g = self._open(c.name, c.gz, (c.dev, c.ino))
                if g is None:
                    continue
                if i == found:
                    g.seek(f.cp_at)
                insert.append(g)
        else:
            tail = f.splitter.flush()
            if tail:
                out.append(self._chunk(f, tail, f.read_at))
            if f.last_size > f.read_at:
                out.append(Gap(self.source, self.path, f.dev, f.ino, f.last_size - f.read_at,
                               _mtime(f.mtime_ns), _mtime(st.st_mtime_ns), "truncated before it was read"))
        f.splitter, f.read_at, f.cp_at, f.recent, f.last_size = self._new(), 0, 0, b"", 0
        self._chain[-1:-1] = insert
        self._known_old = {c.ident for c in rotated_backups(self.path)}
        first = insert[0] if insert else f
        out.append(self._chunk(first, b"", first.cp_at))  # the position moved back: say so at once

    def _read_chain(self, out: list[Event], budget: int, st: os.stat_result | None) -> None:
        while self._chain:
            f = self._chain[0]
            later = self._chain[1:]
            # Ask before reading: once a newer file holds data, the writer has finished this one.
            # A deleted file is finished too: nobody could read what is still written to it, and a
            # checkpoint must not stay on an inode number the filesystem may hand out again.
            finished = f.fd is None or os.fstat(f.fd).st_nlink == 0 or any(g.has_data() for g in later)
            budget -= self._read(f, out, budget)
            if budget <= 0:
                self.behind = True
                return
            if not later:
                if f.fd is not None and st is None and os.fstat(f.fd).st_nlink == 0:
                    out.append(Notice(self.source, self.path, NoticeKind.DELETED, f"{f.name} was deleted"))
                    self._finish(f, out, None)
                return
            if not finished:
                return
            self._finish(f, out, later[0])

    def _finish(self, f: _Open, out: list[Event], nxt: _Open | None) -> None:
        tail = f.splitter.flush()  # a last line without its newline will never be completed now
        if tail:
            out.append(self._chunk(f, tail, f.read_at))
        f.close()
        self._chain.pop(0)
        if nxt is not None:
            out.append(self._chunk(nxt, b"", nxt.cp_at))
        else:
            cp = self._cp = Checkpoint(self.path, 0, 0, 0, fingerprint(b""), f.mtime_ns)
            out.append(Chunk(self.source, self.path, f.name, 0, 0, b"", 0, 0, cp))

    def _read(self, f: _Open, out: list[Event], budget: int) -> int:
        """Read ``f`` to its end (or the budget); emit one chunk per block that completes lines."""
        total = 0
        try:
            if f.fd is not None:
                st = os.fstat(f.fd)
                f.last_size, f.mtime_ns = st.st_size, st.st_mtime_ns
            while total < budget:
                buf = f.read(self._block)
                if not buf:
                    break
                total += len(buf)
                lines = f.splitter.push(buf)
                base = max(f.cp_at - FP_BYTES, 0)
                recent = f.recent + buf
                f.read_at += len(buf)
                cp_at = f.read_at - f.splitter.pending
                new_base = max(cp_at - FP_BYTES, 0)
                f.recent = recent[new_base - base :]
                if cp_at > f.cp_at or lines:
                    out.append(self._chunk(f, lines, cp_at))
        except (OSError, EOFError, zlib.error) as exc:
            out.append(Notice(self.source, self.path, NoticeKind.ERROR, f"reading {f.name}: {exc}"))
            if f.fd is None:  # a broken compressed backup: what is left of it is lost
                out.append(Gap(self.source, self.path, f.dev, f.ino, None, None, _mtime(f.mtime_ns),
                               f"{f.name} could not be decompressed past byte {f.read_at}"))
                f.close()
        return total

    def _chunk(self, f: _Open, data: bytes, cp_at: int) -> Chunk:
        start = f.cp_at
        f.cp_at = cp_at
        # ``recent`` ends at ``read_at`` and starts at least FP_BYTES before ``cp_at`` (or at 0).
        fp = fingerprint(f.recent[: len(f.recent) - (f.read_at - cp_at)])
        cp = Checkpoint(self.path, f.dev, f.ino, cp_at, fp, f.mtime_ns)
        self._cp = cp
        return Chunk(self.source, self.path, f.name, f.dev, f.ino, data, start, cp_at, cp)

    def close(self) -> None:
        for f in self._chain:
            f.close()
        self._chain = []


def _last_line_end(f: _Open) -> int:
    """Offset just after the last newline of ``f`` (0 when it has none): where ``start_at: end`` begins."""
    assert f.fd is not None
    end = os.fstat(f.fd).st_size
    while end > 0:
        start = max(end - BLOCK, 0)
        nl = os.pread(f.fd, end - start, start).rfind(b"\n")
        if nl >= 0:
            return start + nl + 1
        end = start
    return 0


_MAGIC = re.compile(r"[*?\[]")


class Follower:
    """All files of one source: its path, or each file its glob matches (files may appear later).

    ``checkpoints`` maps a file's path to where it was left. ``start_at`` (``end``: only lines
    written from now on) applies to files present at the first poll that have no checkpoint; a file
    that appears later is read from its beginning. Call ``poll()`` after a change, or iterate
    ``events()`` to be woken by inotify.
    """

    def __init__(self, source: SourceConfig, checkpoints: Mapping[str, Checkpoint] | None = None, *,
                 splitter_factory: Callable[[], Splitter] | None = None, block_size: int = BLOCK) -> None:
        self.source = source
        self._checkpoints = dict(checkpoints or {})
        self._new: Callable[[], Splitter] = splitter_factory or (
            lambda: LineSplitter(source.max_line_bytes))
        self._block = block_size
        self._is_glob = bool(_MAGIC.search(source.path))
        self._trackers: dict[str, FileTracker] = {}
        self._polled = False
        self._said_none = False
        if not self._is_glob:
            self._add(source.path)

    @property
    def behind(self) -> bool:
        """The last poll stopped at its byte budget; poll again without waiting for an event."""
        return any(t.behind for t in self._trackers.values())

    def _add(self, path: str) -> None:
        start_at = self.source.start_at if not self._polled else "beginning"
        self._trackers[path] = FileTracker(self.source.path, path, self._checkpoints.get(path),
                                           start_at=start_at, splitter_factory=self._new,
                                           block_size=self._block)

    def poll(self) -> list[Event]:
        """Read what is new in every file of the source; never blocks, never waits."""
        out: list[Event] = []
        if self._is_glob:
            matches = sorted(p for p in glob.glob(self.source.path) if os.path.isfile(p))
            for path in matches:
                if path not in self._trackers:
                    self._add(path)
            if not matches and not self._trackers and not self._said_none:
                out.append(Notice(self.source.path, self.source.path, NoticeKind.ABSENT,
                                  "no file matches yet; waiting"))
                self._said_none = True
        for tracker in list(self._trackers.values()):
            out.extend(tracker.poll())
        self._polled = True
        return out

    def close(self) -> None:
        for tracker in self._trackers.values():
            tracker.close()

    def watch_dir(self) -> str:
        """The directory to watch: the source's parent (the part of a glob before its first pattern)."""
        parts = self.source.path.split(os.sep)
        fixed = [p for p in parts[:-1]]
        for i, part in enumerate(parts[:-1]):
            if _MAGIC.search(part):
                fixed = parts[:i]
                break
        return os.sep.join(fixed) or os.sep

    def _wanted(self, _change: object, path: str) -> bool:
        name = os.path.basename(path)
        pattern = os.path.basename(self.source.path)
        return path == self.watch_dir() or fnmatch.fnmatchcase(name, pattern + "*")

    async def events(self, *, flush_after: float = 0.5, recheck: float = 5.0, debounce_ms: int = 50,
                     step_ms: int = 20) -> AsyncIterator[Event | Quiet]:
        """Follow forever: poll on every inotify wake-up (and every ``recheck`` seconds regardless).

        Yields what ``poll()`` returns, and a ``Quiet`` once ``flush_after`` seconds pass without new
        bytes after some arrived. Watches the parent directory, so rename rotation never deafens it;
        when that directory is removed and recreated the watch starts again. Stop by leaving the loop.
        """
        wake = asyncio.Event()
        stop = asyncio.Event()

        async def watch() -> None:
            while not stop.is_set():
                directory = self.watch_dir()
                try:
                    ident = os.stat(directory)
                    async for _ in awatch(directory, watch_filter=self._wanted, debounce=debounce_ms,
                                          step=step_ms, stop_event=stop, rust_timeout=int(recheck * 1000),
                                          yield_on_timeout=True, recursive=self._is_glob):
                        wake.set()
                        now = os.stat(directory)
                        if (now.st_dev, now.st_ino) != (ident.st_dev, ident.st_ino):
                            break  # the directory was replaced: watch the new one
                except OSError as exc:
                    log.debug("cannot watch %s yet: %s", directory, exc)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), recheck)
                wake.set()

        task = asyncio.create_task(watch())
        try:
            owed = False
            while True:
                wake.clear()
                events = self.poll()
                for event in events:
                    yield event
                if any(isinstance(e, Chunk) and e.data for e in events):
                    owed = True
                if self.behind:
                    await asyncio.sleep(0)
                    continue
                try:
                    await asyncio.wait_for(wake.wait(), flush_after if owed else None)
                except TimeoutError:
                    owed = False
                    yield Quiet(self.source.path)
        finally:
            stop.set()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            self.close()
