"""The daemon's per-source state: the follower, a pipeline per followed file, and what each owes the store."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from snapwatch.codec import incident_json, stored_json
from snapwatch.config.models import RulesConfig, SourceConfig
from snapwatch.detect.detector import WINDOW_ROWS, Detector
from snapwatch.detect.history import RUN_ROWS, History
from snapwatch.detect.pipeline import Batch, SourcePipeline
from snapwatch.detect.rows import UNSAVED, Mark, RowChanges
from snapwatch.detect.timeline import Timeline, TokenSwitch
from snapwatch.ingest.lines import CutCounts, LineSplitter
from snapwatch.model import Checkpoint, Exchange, Gap, Incident, ParseStats, Transition
from snapwatch.run.telemetry import FileView
from snapwatch.store.state import IncidentRow, Store
from snapwatch.tail.events import Chunk, Notice
from snapwatch.tail.watch import Follower, Quiet

log = logging.getLogger(__name__)


INTERLEAVED = ("%s: several processes write this log and their lines interleave (%d line(s) so far came after "
               "other blocks' lines): add the process id to the backend's log format, after the time "
               "('%%(asctime)s - [%%(process)d] - %%(levelname)s - %%(message)s'), so that each response is "
               "paired with a request of its own process")


# The memory's parts saved as rows, named by where they stand in the memory document.
WINDOW_PART = "/".join(("detector", *WINDOW_ROWS))
RUNS_PART = "/".join(("history", *RUN_ROWS))


@dataclass(slots=True)
class Owed:
    """Batches processed but not yet committed: saved with the timers, at once when an incident opens or
    resolves, and never while the assembler still holds part of a response."""

    counts: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    last_record_at: datetime | None = None
    incidents: dict[str, Incident] = field(default_factory=dict)  # by id: the latest state of each one changed
    exchanges: list[Exchange] = field(default_factory=list)  # for the metrics, once committed
    minutes: dict[tuple[datetime, str], int] = field(default_factory=dict)  # (minute, status) → responses
    switches: list[TokenSwitch] = field(default_factory=list)

    def incident_rows(self, verdicts: Mapping[str, str]) -> list[IncidentRow]:
        """The incidents changed, as the store keeps them (with their counts and first failure: the history
        a report reads), with the verdicts known so far."""
        return [IncidentRow(i.id, i.rule.value, i.source, "open" if i.open else "resolved", i.opened_at,
                            i.resolved_at, verdicts.get(i.id), stored_json(incident_json(i)))
                for i in self.incidents.values()]

    def add(self, batch: Batch, timeline: Timeline) -> None:
        minutes, switches = timeline.take()
        for key, n in minutes.items():
            self.minutes[key] = self.minutes.get(key, 0) + n
        self.switches += switches
        self.exchanges.extend(batch.exchanges)
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
    memory_saved: str | None = None  # the source memory as last committed, to skip writing it unchanged
    # Where the parts saved as rows were left by the last commit (none yet: every live row is written once).
    rows_saved: dict[str, Mark] = field(default_factory=dict)
    dirty: bool = False  # batches processed since the last commit

    def owe(self, batch: Batch, checkpoint: Checkpoint | None) -> None:
        """Take a processed batch (and where the file was read to) into what the next commit saves."""
        self.owed.add(batch, self.pipeline.timeline)
        if checkpoint is not None:
            self.checkpoint = checkpoint
        self.dirty = True

    def commit(self, store: Store, verdicts: Mapping[str, str]) -> Owed:
        """Commit what is owed with the checkpoint in one transaction; returns what was committed.

        The detector and history snapshot is written only when it differs from the one last committed, and
        the parts that grow with the source (the error-rate window, the accepted runs) by their changes only:
        a save costs what changed, not how much the source remembers.
        """
        owed, self.owed = self.owed, Owed()
        self.dirty = False
        pipeline = self.pipeline
        memory = stored_json(self.memory())
        rows = self.row_changes()
        store.commit_batch(self.checkpoint, path=pipeline.label, status_counts=owed.counts,
                           requests=owed.requests, last_record_at=owed.last_record_at,
                           source_memory=None if memory == self.memory_saved else memory,
                           memory_rows=rows,
                           incident_changes=owed.incident_rows(verdicts), minutes=owed.minutes,
                           switches=owed.switches)
        self.memory_saved = memory
        self.rows_saved = {part: changes.mark for part, changes in rows.items()}
        return owed

    def row_changes(self) -> dict[str, RowChanges]:
        """The parts of the memory saved as rows, each by its changes since the last commit (by part name)."""
        pipeline, saved = self.pipeline, self.rows_saved
        return {WINDOW_PART: pipeline.detector.window_changes(saved.get(WINDOW_PART, UNSAVED)),
                RUNS_PART: pipeline.history.run_changes(saved.get(RUNS_PART, UNSAVED))}

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
        """What the store keeps for this file beside its checkpoint (restored by ``restored``), without the
        parts saved as rows (``row_changes``): the store puts those back in when it is read."""
        pipeline = self.pipeline
        return {"detector": pipeline.detector.snapshot(rows=False), "history": pipeline.history.snapshot(rows=False),
                "parse": pipeline.assembler.stats.to_json(),
                "interleaved": pipeline.assembler.interleaved or self.interleaving_said,
                "token_kinds": {fp: kind.value for fp, kind in pipeline.assembler.tokens.items()}}

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

    async def pump(self, events: asyncio.Queue[tuple[Source, Chunk | Gap | Notice | Quiet]], flush_after: float,
                   recheck: float) -> None:
        """Put what the follower finds on ``events`` until cancelled (``stop``); when following fails, say so
        and start again after ``recheck`` seconds."""
        while True:
            try:
                async for event in self.follower.events(flush_after=flush_after, recheck=recheck):
                    await events.put((self, event))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("following %s failed; retrying", self.config.path)
                await asyncio.sleep(recheck)

    def stop(self) -> None:
        """Stop following: the pump task cancelled, every file closed."""
        if self.task is not None:
            self.task.cancel()
        self.follower.close()

    def say_problems(self) -> None:
        """Log, as they happen, the records not taken at face value and the over-long lines cut."""
        for path, f in self.files.items():
            for line in f.news(path):
                log.warning("%s", line)
        if self.cuts.long_lines > self.cuts_said:
            log.warning("%s: %d more line(s) over max_line_bytes (%d) cut (%d in all since start)",
                        self.config.path, self.cuts.long_lines - self.cuts_said, self.config.max_line_bytes,
                        self.cuts.long_lines)
            self.cuts_said = self.cuts.long_lines

    def views(self) -> list[FileView]:
        """What the metrics need of each followed file."""
        return [FileView(path, f.checkpoint, f.pipeline.detector.streak_lengths(), f.pipeline.detector.open_incidents())
                for path, f in self.files.items()]


def say_transition(t: Transition, verdict: str) -> None:
    """One warning line when an incident opens or resolves (journald shows it at warning priority)."""
    inc = t.incident
    log.warning("incident %s: %s on %s since %s (%d failed: %s) verdict %s", t.kind.value, inc.rule.value,
                inc.source, inc.opened_at.isoformat(), inc.responses, ", ".join(f"{s}×{n}" for s, n in inc.by_status),
                verdict)
