"""Pairing requests with responses: per process and event name, in log order, bounded in number and in time;
what is never answered is counted, never paired with a later response."""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

from snapwatch.ingest.shapes import PendingRequest, build_request
from snapwatch.ingest.stamps import EPOCH
from snapwatch.model import ParseStats, Request

MAX_QUEUED_REQUESTS = 1024  # unanswered requests kept per event name
MAX_EVENT_NAMES = 1024
# A request whose token no request carried any more once the token of the newest waiting request first
# appeared, and that is older than this when a response comes, was sent by a process that is gone (a
# restart with a new token): the response is another request's. A second of slack, because logs stamp
# whole seconds and concurrent calls are answered out of order within a moment.
SWITCH_AGE = timedelta(seconds=1)

Waiting = Request | PendingRequest  # a request whose head lines may still be being read
Key = str | tuple[bytes, str]  # the event name, or (process id, event name) when the log names processes


def fp_of(w: Waiting) -> str | None:
    """The fingerprint of the token a waiting request carries (None: none seen)."""
    return w.token_fp


class Pairing:
    """Requests waiting for their response, one FIFO queue per key (event name, or process and event).

    A response takes the oldest request of its key, except requests that can no longer be answered:
    those waiting longer than ``timeout`` of record time (counted in ``stats.unanswered_requests``, like
    those still waiting at the end of the input) and those a restart left behind (see SWITCH_AGE: set
    aside, taken only when no other request of the key waits, counted unanswered once they time out).
    ``queues`` is exposed for the assembler's hot loop, which appends to it directly after ``room_for``
    and records in ``first_seen`` and ``last_seen`` when each token was first and last sent (``note``).
    Requests pushed out by the bounds are counted in ``stats.unpaired_requests``; pending requests that
    never got a URL line in ``stats.requests_without_url``.
    """

    __slots__ = ("_at", "_cutoff", "first_seen", "last_seen", "queues", "set_aside", "stats", "timeout")

    def __init__(self, stats: ParseStats, timeout: timedelta = timedelta(seconds=120)) -> None:
        self.stats = stats
        self.timeout = timeout
        self.queues: dict[Key, deque[Waiting]] = {}
        self.set_aside: dict[Key, deque[Waiting]] = {}
        self.first_seen: dict[str | None, datetime] = {}  # token fingerprint → when a request first carried it
        self.last_seen: dict[str | None, datetime] = {}  # … and last
        self._at, self._cutoff = EPOCH, EPOCH - timeout

    def room_for(self, key: Key) -> deque[Waiting]:
        """The queue for ``key``, with room for one more request (the oldest unanswered one goes)."""
        queue = self.queues.get(key)
        if queue is None:
            if len(self.queues) >= MAX_EVENT_NAMES:
                oldest = next(iter(self.queues))
                for w in self.queues.pop(oldest):
                    self._drop(w)
                    self.stats.unpaired_requests += 1
            queue = self.queues[key] = deque()
        if len(queue) >= MAX_QUEUED_REQUESTS:
            self._drop(queue.popleft())
            self.stats.unpaired_requests += 1
        return queue

    def note(self, fp: str | None, at: datetime) -> None:
        """A request sent at ``at`` carries the token ``fp`` (None: none seen)."""
        self.last_seen[fp] = at
        if fp not in self.first_seen:
            self.first_seen[fp] = at

    def take(self, key: Key, at: datetime) -> Request | None:
        """The request a response of ``key`` at ``at`` answers, now answered; None (counted) when none waits."""
        queue = self.queues.get(key)
        if queue:
            if at is not self._at:  # records of one second share one datetime: one subtraction per second
                self._at, self._cutoff = at, at - self.timeout
            head = queue[0]
            if len(queue) == 1 and head.at >= self._cutoff:  # the common case: one call in flight
                queue.popleft()
                return self._build(head) if isinstance(head, PendingRequest) else head
            return self._take_from(key, queue, at)
        return self._fallback(key, at)

    def _take_from(self, key: Key, queue: deque[Waiting], at: datetime) -> Request | None:
        cutoff = at - self.timeout
        while queue and queue[0].at < cutoff:
            self._unanswered(queue.popleft())
        if not queue:
            return self._fallback(key, at)
        tail = queue[-1]
        tail_fp = fp_of(tail)
        switch = self.first_seen.get(tail_fp, EPOCH)
        while len(queue) > 1 and tail_fp is not None and tail.at <= at:
            head = queue[0]
            fp = fp_of(head)
            if fp is None or fp == tail_fp or at - head.at <= SWITCH_AGE or self.last_seen.get(fp, EPOCH) >= switch:
                break
            self.set_aside.setdefault(key, deque()).append(queue.popleft())
        head = queue.popleft()
        return self._build(head) if isinstance(head, PendingRequest) else head

    def _fallback(self, key: Key, at: datetime) -> Request | None:
        """A response with no request of its key waiting: one set aside after a restart answered after all."""
        aside = self.set_aside.get(key)
        if aside:
            cutoff = at - self.timeout
            while aside and aside[0].at < cutoff:
                self._unanswered(aside.popleft())
            if aside:
                head = aside.popleft()
                return self._build(head) if isinstance(head, PendingRequest) else head
        self.stats.unpaired_responses += 1
        return None

    def expire(self, now: datetime) -> None:
        """Count as unanswered every request waiting longer than ``timeout`` at record time ``now``."""
        cutoff = now - self.timeout
        for table in (self.queues, self.set_aside):
            for key in [k for k, q in table.items() if not q or q[0].at < cutoff]:
                queue = table[key]
                while queue and queue[0].at < cutoff:
                    self._unanswered(queue.popleft())
                if not queue:
                    del table[key]
        if len(self.last_seen) > 4 * MAX_EVENT_NAMES:
            self.last_seen = {fp: t for fp, t in self.last_seen.items() if t >= cutoff}
            self.first_seen = {fp: t for fp, t in self.first_seen.items() if fp in self.last_seen}

    def end_of_input(self) -> None:
        """No response will come any more: count every request still waiting as unanswered."""
        for table in (self.queues, self.set_aside):
            for queue in table.values():
                for w in queue:
                    self._unanswered(w)
            table.clear()

    @property
    def waiting(self) -> int:
        """Requests waiting for their response."""
        return sum(len(q) for q in self.queues.values()) + sum(len(q) for q in self.set_aside.values())

    def _unanswered(self, w: Waiting) -> None:
        self.stats.unanswered_requests += 1
        self._drop(w)

    def _drop(self, w: Waiting) -> None:
        if type(w) is PendingRequest and w.url is None:
            self.stats.requests_without_url += 1

    def _build(self, w: PendingRequest) -> Request:
        if w.url is None:
            self.stats.requests_without_url += 1
        return build_request(w)
