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
    generation: int  # 0 for the live file, N for name.N / name.N.gz (higher is older)
    size: int


def _describe(path: Path) -> LogFile:
    match = _ROTATED.match(path.name)
    assert match is not None  # the pattern matches every name
    generation = int(match.group("n")) if match.group("n") else 0
    # A dateext suffix (name-20251203) is a date, not a generation: newer dates are newer files.
    if generation > 10_000_000:
        generation = -generation
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return LogFile(path, str(path.parent / match.group("base")), generation, size)


def order_files(paths: Iterable[str | Path]) -> list[LogFile]:
    """Files grouped by the log they belong to, each group oldest first (``.5`` … ``.1``, then the live file)."""
    files = [_describe(Path(p)) for p in dict.fromkeys(str(p) for p in paths)]
    return sorted(files, key=lambda f: (f.base, -f.generation if f.generation > 0 else f.generation))


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
