"""Rotated backups of a log file: finding them by name, inode and fingerprint; opening them (gzip too) at an offset."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from snapwatch.tail.gzipped import GzipDamage, GzipStream

BLOCK = 1 << 20  # reads are this big: per-block work only, never per line
FP_BYTES = 1024  # how many bytes before a checkpoint name the file's content
HEAD_BYTES = 1024  # and how many at its start: a file truncated and regrown alike near the offset differs there
_OLD_FP_BYTES = 64  # what checkpoints written before version 2 fingerprints covered
_FP_VERSION = "2:"


def fingerprint(head: bytes, before: bytes) -> str:
    """What names a file's content up to a checkpoint offset: its first ``HEAD_BYTES`` (``head``, fewer when the
    offset is smaller) and the ``FP_BYTES`` just before the offset (``before``), hashed together."""
    digest = hashlib.sha256(len(head).to_bytes(4, "big") + head[:HEAD_BYTES] + before[-FP_BYTES:])
    return _FP_VERSION + digest.hexdigest()


def fingerprint_matches(fp: str, head: bytes, before: bytes) -> bool:
    """Whether ``fp`` names this content; a checkpoint from an older snapwatch named only the last 64 bytes."""
    if fp.startswith(_FP_VERSION):
        return fp == fingerprint(head, before)
    return fp == hashlib.sha256(before[-_OLD_FP_BYTES:]).hexdigest()


def regular(st: os.stat_result) -> str | None:
    """None for a regular file, else what it is (``a FIFO``, ``a character device``, ...)."""
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def open_regular(name: str) -> int:
    """``name`` opened for reading without ever blocking; raises NotRegular for a FIFO, a device, a directory."""
    fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)  # a FIFO with no writer must not block
    kind = regular(os.fstat(fd))
    if kind is not None:
        os.close(fd)
        raise NotRegular(name, kind)
    return fd


class NotRegular(OSError):
    """A path that is not a regular file: snapwatch reads only regular files."""

    def __init__(self, name: str, kind: str) -> None:
        super().__init__(f"{name} is {kind}, not a regular file")
        self.name, self.kind = name, kind


@dataclass(frozen=True, slots=True)
class Backup:
    """One rotated backup as listed: its name, identity, size and modification time."""

    name: str
    dev: int
    ino: int
    size: int
    mtime_ns: int
    gz: bool
    head: bytes = b""  # the first bytes: an inode number freed by a deleted backup may name a new file
    ctime_ns: int = 0  # its last rename (or write): when a rotation last moved it

    @property
    def ident(self) -> tuple[int, int, bytes]:
        return (self.dev, self.ino, self.head)


_HEAD_BYTES = 64
_NUMBERED = r"\.(\d+)(\.gz)?$"
_DATED = r"-(\d{8}(?:\d{2})?(?:-\d+)?)(\.gz)?$"


def rotated_backups(path: str) -> list[Backup]:
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
        out: list[Backup] = []
        try:
            for name, gz in ordered:
                full = os.path.join(directory, name)
                try:
                    fd = open_regular(full)
                except NotRegular:
                    continue  # never a backup: snapwatch reads only regular files
                try:
                    st, head = os.fstat(fd), os.pread(fd, _HEAD_BYTES, 0)
                finally:
                    os.close(fd)
                out.append(Backup(full, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, gz, head, st.st_ctime_ns))
        except FileNotFoundError:
            continue  # a rotation renamed files while we looked: look again
        if len({(c.dev, c.ino) for c in out}) < len(out):
            continue  # one file under two names: it moved up while we looked; look again
        return out
    return []


def identities(paths: list[str]) -> set[tuple[int, int, bytes]]:
    """The identities (as ``Backup.ident``) of the regular files among ``paths`` that can be opened."""
    found = set()
    for name in paths:
        try:
            fd = open_regular(name)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            found.add((st.st_dev, st.st_ino, os.pread(fd, _HEAD_BYTES, 0)))
        finally:
            os.close(fd)
    return found


def holds(c: Backup, offset: int, fp: str) -> bool:
    """Whether the backup holds ``fp`` before ``offset`` (it is, or copies, the checkpointed file)."""
    start = max(offset - FP_BYTES, 0)
    try:
        if not c.gz:
            if c.size < offset:
                return False
            fd = open_regular(c.name)
            try:
                head = os.pread(fd, min(HEAD_BYTES, offset), 0)
                return fingerprint_matches(fp, head, os.pread(fd, offset - start, start))
            finally:
                os.close(fd)
        with os.fdopen(open_regular(c.name), "rb") as raw:
            head, data = _head_and_before(GzipStream(raw, c.name), offset)
            return len(data) == offset - start and fingerprint_matches(fp, head, data)
    except (OSError, GzipDamage):
        return False


def locate(backups: list[Backup], offset: int, fp: str, ident: tuple[int, int] | None = None) -> int | None:
    """Index of the backup holding ``fp`` before ``offset``: the one with identity ``ident`` first, then any.

    At offset 0 every file "holds" the empty fingerprint, so only the identity can name the file there.
    """
    if ident is not None:
        found = next((i for i, c in enumerate(backups) if (c.dev, c.ino) == ident and holds(c, offset, fp)), None)
        if found is not None:
            return found
    if offset > 0:
        return next((i for i, c in enumerate(backups) if holds(c, offset, fp)), None)
    return None


def _head_and_before(stream: GzipStream, offset: int) -> tuple[bytes, bytes]:
    """From a stream at its start: its first ``HEAD_BYTES`` and the ``FP_BYTES`` before ``offset`` (read to there)."""
    head = stream.read_exact(min(HEAD_BYTES, offset))
    start = max(offset - FP_BYTES, 0)
    if start <= len(head):
        return head, head[start:] + stream.read_exact(offset - len(head))
    stream.skip(start - len(head))
    return head, stream.read_exact(offset - start)


class Splitter(Protocol):
    @property
    def pending(self) -> int: ...
    def push(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


class OpenFile:
    """One file of the read chain, open by descriptor (or a gzip stream), with its split state."""

    __slots__ = ("cp_at", "dev", "fd", "gz", "head", "ino", "last_size", "mtime_ns", "name", "raw", "read_at",
                 "recent", "splitter")

    def __init__(self, name: str, *, fd: int | None, raw: BinaryIO | None, dev: int, ino: int,
                 splitter: Splitter) -> None:
        self.name, self.fd, self.raw, self.dev, self.ino = name, fd, raw, dev, ino
        self.gz = GzipStream(raw, name) if raw is not None else None
        self.splitter = splitter
        self.read_at = 0  # next raw byte to read
        self.cp_at = 0  # just after the last complete line handed out
        self.recent = b""  # raw bytes [max(cp_at - FP_BYTES, 0), read_at)
        self.head = b""  # raw bytes [0, min(HEAD_BYTES, read_at))
        self.last_size = 0
        self.mtime_ns = 0

    def seek(self, offset: int) -> None:
        """Position at ``offset`` (a line boundary), loading the fingerprint bytes before it.

        A gzip backup damaged before ``offset`` stops where the damage is; the next ``read`` raises it.
        """
        start = max(offset - FP_BYTES, 0)
        if self.fd is not None:
            self.head = os.pread(self.fd, min(HEAD_BYTES, offset), 0)
            self.recent = os.pread(self.fd, offset - start, start)
        else:
            assert self.gz is not None
            with contextlib.suppress(GzipDamage):  # raised again by the next read
                self.head, self.recent = _head_and_before(self.gz, offset)
            start = self.gz.position - len(self.recent)
        self.read_at = self.cp_at = start + len(self.recent)

    def read(self, n: int) -> bytes:
        """The next bytes (``b""`` at the end); a damaged gzip backup raises GzipDamage after its readable part."""
        if self.fd is not None:
            data = os.pread(self.fd, n, self.read_at)
        else:
            assert self.gz is not None
            data = self.gz.read(n)
        if len(self.head) < HEAD_BYTES and len(self.head) == self.read_at:
            self.head = (self.head + data)[:HEAD_BYTES]
        return data

    def fingerprint(self, offset: int) -> str:
        """The fingerprint at ``offset``, a line boundary in ``[cp_at, read_at]``, from the bytes kept."""
        before = self.recent[: len(self.recent) - (self.read_at - offset)]
        return fingerprint(self.head[: min(HEAD_BYTES, offset)], before)

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


def open_file(name: str, gz: bool, expect: tuple[int, int] | None,
              splitter_factory: Callable[[], Splitter]) -> OpenFile | None:
    """``name`` opened for reading from its start; None when it is gone or is no longer ``expect`` (dev, inode)."""
    try:
        fd = open_regular(name)
    except (FileNotFoundError, NotRegular):
        return None  # gone, or not a regular file (the tracker says so): snapwatch reads neither
    st = os.fstat(fd)
    if expect is not None and (st.st_dev, st.st_ino) != expect:
        os.close(fd)  # renamed under us; the next poll looks again
        return None
    raw = os.fdopen(fd, "rb") if gz else None
    f = OpenFile(name, fd=None if gz else fd, raw=raw, dev=st.st_dev, ino=st.st_ino, splitter=splitter_factory())
    f.mtime_ns = st.st_mtime_ns
    return f


def last_line_end(f: OpenFile) -> int:
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
