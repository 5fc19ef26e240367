"""The daemon's per-source state: the follower, a pipeline per followed file, and what each owes the store."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from snapwatch.config import RulesConfig, SourceConfig
from snapwatch.detect.detector import Detector
from snapwatch.detect.history import History
from snapwatch.detect.pipeline import Batch, SourcePipeline
from snapwatch.ingest.lines import CutCounts, LineSplitter
from snapwatch.model import Checkpoint, Incident, ParseStats
from snapwatch.tail.watch import Follower

INTERLEAVED = ("%s: several processes write this log and their lines interleave (%d line(s) so far came after "
               "other blocks' lines): add the process id to the backend's log format, after the time "
               "('%%(asctime)s - [%%(process)d] - %%(levelname)s - %%(message)s'), so that each response is "
               "paired with a request of its own process")


@dataclass(slots=True)
class Owed:
    """A batch processed but not yet committed (the assembler still holds part of a response)."""

    counts: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    last_record_at: datetime | None = None
    incidents: dict[str, Incident] = field(default_factory=dict)  # by id: the latest state of each one changed

    def add(self, batch: Batch) -> None:
        for status, n in batch.by_status.items():
            self.counts[status] = self.counts.get(status, 0) + n
        self.requests += batch.requests
        if batch.last_record_at is not None:
            self.last_record_at = batch.last_record_at
        for t in batch.transitions:
            self.incidents[t.incident.id] = t.incident


@dataclass(slots=True)
class FollowedFile:
    """One followed file: its pipeline and what it still owes the store."""

    pipeline: SourcePipeline
    owed: Owed = field(default_factory=Owed)
    checkpoint: Checkpoint | None = None
    tokens_known: int = 0  # distinct tokens the pipeline had seen at the last diagnosis
    skipped_said: dict[str, int] = field(default_factory=dict)  # parse problems already logged, by kind
    interleaving_said: bool = False

    @classmethod
    def restored(cls, config: SourceConfig, path: str, rules: RulesConfig,
                 memory: Mapping[str, Any] | None) -> FollowedFile:
        """A file's pipeline with the detector, history and parse counts the store remembers for it
        (``memory``, as ``memory()`` wrote it)."""
        saved = memory or {}
        detector = Detector.restore(rules, path, saved["detector"]) if "detector" in saved else Detector(rules, path)
        history = History.restore(saved["history"]) if "history" in saved else History()
        followed = cls(SourcePipeline(config, rules, label=path, detector=detector, history=history,
                                      views_at_opening=True))
        stats = followed.pipeline.assembler.stats
        for kind, n in dict(saved.get("parse") or {}).items():
            if kind in ParseStats.__dataclass_fields__ and kind not in ("extra", "lines"):
                setattr(stats, kind, int(n))
            else:
                stats.extra[kind] = int(n)
        followed.skipped_said = stats.to_json()
        followed.interleaving_said = bool(saved.get("interleaved"))
        return followed

    def memory(self) -> dict[str, Any]:
        """What the store keeps for this file beside its checkpoint (restored by ``restored``)."""
        pipeline = self.pipeline
        return {"detector": pipeline.detector.snapshot(), "history": pipeline.history.snapshot(),
                "parse": pipeline.assembler.stats.to_json(),
                "interleaved": pipeline.assembler.interleaved or self.interleaving_said}

    def news(self, path: str) -> list[str]:
        """What the parser could not take at face value since last asked, and (once) interleaved writers:
        one log line each, so nothing is skipped silently."""
        said: list[str] = []
        for kind, total in self.pipeline.assembler.stats.to_json().items():
            if kind == "unmatched_lines":
                continue  # a regex source's other lines are expected; scan reports how many
            new = total - self.skipped_said.get(kind, 0)
            if new > 0:
                said.append(f"{path}: {new} more record(s) not taken at face value: {kind.replace('_', ' ')} "
                            f"({total} in all since start)")
                self.skipped_said[kind] = total
        interleaved = self.pipeline.assembler.interleaved
        if interleaved and not self.interleaving_said:
            self.interleaving_said = True
            said.append(INTERLEAVED % (path, interleaved))
        return said


class Source:
    """One configured source: its follower and a pipeline per file it follows."""

    def __init__(self, config: SourceConfig, checkpoints: Mapping[str, Checkpoint]) -> None:
        self.config = config
        self.cuts = CutCounts()  # over-long lines cut by the splitters of every file of this source
        self.cuts_said = 0
        self.follower = Follower(config, checkpoints,
                                 splitter_factory=lambda: LineSplitter(config.max_line_bytes, self.cuts))
        self.files: dict[str, FollowedFile] = {}
        self.task: asyncio.Task[None] | None = None
