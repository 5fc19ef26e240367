"""A follower that keeps what it handed out, and numbered lines to write and expect."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from snapwatch.config import SourceConfig
from snapwatch.model import Checkpoint, Gap
from snapwatch.tail.events import Chunk, Notice, NoticeKind
from snapwatch.tail.watch import Follower


class Reader:
    """A follower plus what it handed out: lines, gaps, notices, and the last checkpoint per path."""

    def __init__(self, path: Path | str, start_at: str = "beginning",
                 checkpoints: Mapping[str, Checkpoint] | None = None, max_line_bytes: int = 1 << 20) -> None:
        cfg = SourceConfig(path=str(path), start_at=start_at, max_line_bytes=max_line_bytes)  # type: ignore[arg-type]
        self.follower = Follower(cfg, checkpoints)
        self.lines: list[bytes] = []
        self.gaps: list[Gap] = []
        self.notices: list[Notice] = []
        self.checkpoints: dict[str, Checkpoint] = dict(checkpoints or {})
        self.chunks: list[Chunk] = []

    def poll(self) -> list[bytes]:
        got: list[bytes] = []
        while True:
            for event in self.follower.poll():
                if isinstance(event, Chunk):
                    assert event.data == b"" or event.data.endswith(b"\n")
                    got.extend(event.data.splitlines())
                    self.checkpoints[event.path] = event.checkpoint
                    self.chunks.append(event)
                elif isinstance(event, Gap):
                    self.gaps.append(event)
                else:
                    self.notices.append(event)
            if not self.follower.behind:
                break
        self.lines.extend(got)
        return got

    def restart(self) -> Reader:
        self.follower.close()
        cfg = self.follower.source
        fresh = Reader(cfg.path, cfg.start_at, self.checkpoints, cfg.max_line_bytes)
        fresh.lines, fresh.gaps = list(self.lines), list(self.gaps)  # one history across restarts
        return fresh

    def kinds(self) -> list[NoticeKind]:
        return [n.kind for n in self.notices]


def numbered(start: int, stop: int) -> bytes:
    return b"".join(b"line %06d some padding to make it longer\n" % i for i in range(start, stop))


def expected(start: int, stop: int) -> list[bytes]:
    return numbered(start, stop).splitlines()
