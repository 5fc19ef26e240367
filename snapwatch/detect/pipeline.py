"""One source's pure pipeline: complete lines → exchanges → counters, history and incident transitions.

``scan`` and the daemon drive the same SourcePipeline; only where the bytes come from differs.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from snapwatch.config import RulesConfig, SourceConfig
from snapwatch.detect.detector import Detector, status_key
from snapwatch.detect.history import History
from snapwatch.ingest.records import Assembler
from snapwatch.model import Diagnosis, Exchange, Incident, Transition, TransitionKind

Diagnoser = Callable[["SourcePipeline", Incident], Diagnosis]


@dataclass(slots=True)
class Batch:
    """What one feed produced: the exchanges (in order), their transitions, and per-status counts."""

    exchanges: list[Exchange] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    by_status: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    last_record_at: datetime | None = None
    diagnoses: dict[str, Diagnosis] = field(default_factory=dict)  # incident id → diagnosis made as it opened


class SourcePipeline:
    """Assembler, detector and history of one source; every exchange is seen by each, in log order."""

    def __init__(self, source: SourceConfig, rules: RulesConfig, label: str | None = None, *,
                 detector: Detector | None = None, history: History | None = None,
                 diagnoser: Diagnoser | None = None) -> None:
        self.label = label or source.path
        # Called the moment an incident opens, before later records reach the history: the evidence is
        # what was known at the start of the streak, not at the end of the chunk that held it.
        self.diagnoser = diagnoser
        self.assembler = Assembler(source, self.label)
        self.detector = detector or Detector(rules, self.label)
        self.history = history or History()
        # Bodies of the latest 400 responses: the invalid-events diagnosis counts their reasons.
        self.invalid_bodies: deque[str] = deque(maxlen=200)

    def feed(self, lines: bytes) -> Batch:
        """Feed complete lines; returns what they completed."""
        return self._batch(lambda: self.assembler.feed(lines))

    def flush(self, *, end_of_input: bool = True) -> Batch:
        """Emit records held for completion (end of input, or the follower's quiet timeout)."""
        return self._batch(lambda: self.assembler.flush(end_of_input=end_of_input))

    def _batch(self, emit: Callable[[], list[Exchange]]) -> Batch:
        assembler = self.assembler
        requests_before, counts_before = assembler.requests, assembler.by_status
        batch = self._consume(emit())
        batch.requests = assembler.requests - requests_before
        if batch.exchanges:
            batch.by_status = _status_delta(counts_before, assembler.by_status)
        return batch

    def tick(self, now: datetime) -> list[Transition]:
        """Time passes with no records (the silence rule)."""
        return self.detector.tick(now)

    def _consume(self, exchanges: list[Exchange]) -> Batch:
        batch = Batch(exchanges=exchanges)
        observe, remember = self.detector.observe, self.history.observe
        transitions = batch.transitions
        # batch.by_status is not counted here: the assembler already counts every exchange it emits,
        # and feed/flush take the difference of its totals (one dict per batch, not one per exchange).
        for ex in exchanges:
            if ex.response.status == 400:
                self.invalid_bodies.append(ex.response.body)
            remember(ex)
            found = observe(ex)
            if found:
                transitions.extend(found)
                if self.diagnoser is not None:
                    for t in found:
                        if t.kind is TransitionKind.OPENED:
                            batch.diagnoses[t.incident.id] = self.diagnoser(self, t.incident)
        if exchanges:
            batch.last_record_at = exchanges[-1].at
        return batch


def _status_delta(before: dict[str, int], after: dict[str, int]) -> Counter[str]:
    """How much the assembler's cumulative counts by status grew, keyed like ``detect.status_key``
    (the assembler keeps a status as logged: ``0200`` counts as ``200`` here)."""
    delta: Counter[str] = Counter()
    for key, n in after.items():
        grown = n - before.get(key, 0)
        if grown:
            delta[key if key == "none" else status_key(int(key))] += grown
    return delta
