"""One source's pure pipeline: complete lines → exchanges → counters, history and incident transitions.

``scan`` and the daemon drive the same SourcePipeline; only where the bytes come from differs. Data
flows one way: the pipeline never calls its callers. What a diagnosis may look at is a ``SourceView``:
taken as an incident opens (a copy, before later records reach the history) and handed out in the
``Batch``, or taken now with ``view()``.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from snapwatch.config.models import RulesConfig, SourceConfig
from snapwatch.detect.detector import Detector
from snapwatch.detect.history import History
from snapwatch.detect.tally import status_key
from snapwatch.detect.timeline import Timeline
from snapwatch.ingest.records import Assembler
from snapwatch.ingest.tokens import TokenReport
from snapwatch.model import Exchange, Request, Rule, Transition, TransitionKind


@dataclass(frozen=True, slots=True)
class SourceView:
    """What a diagnosis may see of one source: its label, Snap's answers so far (``history``), the tokens
    seen in requests (fingerprint → report, never a token), whether the log holds tokens in clear text,
    and the latest 400 bodies. Read-only by contract: nothing that holds a view feeds it."""

    label: str
    history: History
    token_reports: Mapping[str, TokenReport]
    tokens_in_log: bool
    invalid_bodies: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Recovery:
    """How an incident ended: the request whose answer resolved it (None when not seen), and ``since``,
    the time of the first 2xx after its last failure."""

    since: datetime
    request: Request | None


@dataclass(slots=True)
class Batch:
    """What one feed produced: the exchanges (in order), their transitions, and per-status counts."""

    exchanges: list[Exchange] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    by_status: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    last_record_at: datetime | None = None
    opened: dict[str, SourceView] = field(default_factory=dict)  # incident id → the view as it opened
    recovered: dict[str, Recovery] = field(default_factory=dict)  # incident id → how it ended


class SourcePipeline:
    """Assembler, detector and history of one source; every exchange is seen by each, in log order."""

    def __init__(self, source: SourceConfig, rules: RulesConfig, label: str | None = None, *,
                 detector: Detector | None = None, history: History | None = None,
                 views_at_opening: bool = False) -> None:
        self.label = label or source.path
        # A view taken the moment an incident opens, before later records reach the history: the evidence
        # is what was known at the start of the streak, not at the end of the chunk that held it.
        self.views_at_opening = views_at_opening
        self.assembler = Assembler(source, self.label)
        self.detector = detector or Detector(rules, self.label)
        self.history = history or History()
        last = self.history.last_request
        self.timeline = Timeline(last.token_fp if last is not None else None)
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

    def view(self, *, copy: bool = False) -> SourceView:
        """The source as a diagnosis sees it now; with ``copy``, one that later records leave unchanged."""
        assembler = self.assembler
        return SourceView(self.label, self.history.copy() if copy else self.history,
                          dict(assembler.token_reports) if copy else assembler.token_reports,
                          assembler.tokens_in_log, tuple(self.invalid_bodies))

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
                for t in found:
                    if t.kind is TransitionKind.OPENED and self.views_at_opening:
                        batch.opened[t.incident.id] = self.view(copy=True)
                    elif t.kind is TransitionKind.RESOLVED:
                        # silence ends at the first record of any kind; the others at their first 2xx
                        since = (ex.response.at if t.incident.rule is Rule.SILENCE else None) \
                            or self.detector.recovering_since or ex.response.at
                        batch.recovered[t.incident.id] = Recovery(since, ex.request)
        if exchanges:
            batch.last_record_at = exchanges[-1].at
            self.timeline.observe_all(exchanges)
            # The counts of every incident the batch counted into, as they stand at its end: an alert or
            # a report taken after this batch says exactly how many failed so far.
            transitions.extend(self.detector.updates())
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
