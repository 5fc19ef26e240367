"""Offline scan: whole log files, rotated and gzip backups too, in time order, through the daemon's pipeline."""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from snapwatch.errors import SourceError

CHUNK = 1 << 20
_ROTATED = re.compile(r"^(?P<base>.+?)(?:[.-](?P<n>\d{1,8}))?(?P<gz>\.gz)?$")


@dataclass(frozen=True, slots=True)
class LogFile:
    path: Path
    base: str  # the live file's name this one was rotated from
    age_rank: tuple[int, int]  # sorts oldest first: dateext backups by date, then .N (high N first), then live
    size: int


def _describe(path: Path) -> LogFile:
    match = _ROTATED.match(path.name)
    assert match is not None  # the pattern matches every name
    number = int(match.group("n")) if match.group("n") else None
    if number is None:
        rank = (2, 0)
    elif number > 10_000_000:  # a dateext suffix (name-20251203) is a date: newer dates are newer files
        rank = (0, number)
    else:
        rank = (1, -number)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return LogFile(path, str(path.parent / match.group("base")), rank, size)


def order_files(paths: Iterable[str | Path]) -> list[LogFile]:
    """Files grouped by the log they belong to, each group oldest first (``.5`` … ``.1``, then the live file)."""
    files = [_describe(Path(p)) for p in dict.fromkeys(str(p) for p in paths)]
    return sorted(files, key=lambda f: (f.base, f.age_rank))


def _open(path: Path) -> BinaryIO:
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if raw.read(2) == b"\x1f\x8b":  # gzip magic: logrotate's compress, whatever the name says
        raw.seek(0)
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    raw.seek(0)
    return raw


def read_chunks(path: Path, progress: Callable[[int], None] | None = None) -> Iterator[bytes]:
    """The file's bytes in large blocks (gzip decompressed); ``progress`` gets the compressed bytes read."""
    with _open(path) as stream:
        while block := stream.read(CHUNK):
            if progress is not None:
                progress(len(block))
            yield block
