"""Rotated backups of a log file: finding them by name, inode and fingerprint; opening them (gzip too) at an offset."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Protocol

BLOCK = 1 << 20  # reads are this big: per-block work only, never per line
FP_BYTES = 64  # how many bytes before a checkpoint name the file's content


def fingerprint(data: bytes) -> str:
    """Hex SHA-256 of the (up to ``FP_BYTES``) bytes just before a checkpoint offset."""
    return hashlib.sha256(data[-FP_BYTES:]).hexdigest()


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
                fd = os.open(full, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    st, head = os.fstat(fd), os.pread(fd, _HEAD_BYTES, 0)
                finally:
                    os.close(fd)
                out.append(Backup(full, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, gz, head))
        except FileNotFoundError:
            continue  # a rotation renamed files while we looked: look again
        if len({(c.dev, c.ino) for c in out}) < len(out):
            continue  # one file under two names: it moved up while we looked; look again
        return out
    return []


def holds(c: Backup, offset: int, fp: str) -> bool:
    """Whether the backup holds ``fp`` before ``offset`` (it is, or copies, the checkpointed file)."""
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


class Splitter(Protocol):
    @property
    def pending(self) -> int: ...
    def push(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


class OpenFile:
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


def open_file(name: str, gz: bool, expect: tuple[int, int] | None,
              splitter_factory: Callable[[], Splitter]) -> OpenFile | None:
    """``name`` opened for reading from its start; None when it is gone or is no longer ``expect`` (dev, inode)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
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
