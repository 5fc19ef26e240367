"""What following a file hands out: chunks of complete lines with their checkpoint, gaps, and notices."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from snapwatch.model import Checkpoint, Gap


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


class NoticeKind(StrEnum):
    ABSENT = "absent"
    APPEARED = "appeared"
    ROTATED = "rotated"
    TRUNCATED = "truncated"
    DELETED = "deleted"
    CATCH_UP = "catch-up"
    ERROR = "error"
    REFUSED = "refused"  # not a regular file: a FIFO, a device


@dataclass(frozen=True, slots=True)
class Notice:
    """Something about a followed file worth one log line (said once per occurrence)."""

    source: str
    path: str
    kind: NoticeKind
    detail: str


Event = Chunk | Gap | Notice
