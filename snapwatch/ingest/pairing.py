"""Pairing requests with responses: per event name, in log order, bounded; what is left unanswered is counted."""

from __future__ import annotations

from collections import deque

from snapwatch.ingest.shapes import PendingRequest, build_request
from snapwatch.model import ParseStats, Request

MAX_QUEUED_REQUESTS = 1024  # unanswered requests kept per event name
MAX_EVENT_NAMES = 1024

Waiting = Request | PendingRequest  # a request whose head lines may still be being read


class Pairing:
    """Requests waiting for their response, one FIFO queue per event name.

    ``queues`` is exposed for the assembler's hot loop, which appends to it directly after
    ``room_for``; everything else goes through the methods. Requests pushed out by the bounds, or
    left at the end of the input, are counted in ``stats.unpaired_requests``.
    """

    __slots__ = ("queues", "stats")

    def __init__(self, stats: ParseStats) -> None:
        self.stats = stats
        self.queues: dict[str, deque[Waiting]] = {}

    def room_for(self, event: str) -> deque[Waiting]:
        """The queue for ``event``, with room for one more request (the oldest unanswered one goes)."""
        queue = self.queues.get(event)
        if queue is None:
            if len(self.queues) >= MAX_EVENT_NAMES:
                oldest = next(iter(self.queues))
                self.stats.unpaired_requests += len(self.queues.pop(oldest))
            queue = self.queues[event] = deque()
        if len(queue) >= MAX_QUEUED_REQUESTS:
            queue.popleft()
            self.stats.unpaired_requests += 1
        return queue

    def take(self, event: str) -> Request | None:
        """The oldest request of ``event`` still waiting, now answered; None (counted) when there is none."""
        queue = self.queues.get(event)
        if not queue:
            self.stats.unpaired_responses += 1
            return None
        head = queue.popleft()
        return build_request(head) if isinstance(head, PendingRequest) else head

    def finished(self, req: PendingRequest) -> None:
        """``req``'s head is read: if it is still the newest waiting request, keep it in its built form."""
        queue = self.queues.get(req.event)
        if queue and queue[-1] is req:
            queue[-1] = build_request(req)

    def end_of_input(self) -> None:
        """No response will come any more: count every request still waiting as unanswered."""
        self.stats.unpaired_requests += sum(len(q) for q in self.queues.values())
        self.queues.clear()
