"""Bytes → whole lines: a bounded splitter that keeps a partial tail and cuts over-long lines."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class CutCounts:
    """Over-long lines cut, and the bytes dropped with them; may be shared by the splitters of one source
    (a follower opens a splitter per file, and the daemon reports the source's total)."""

    long_lines: int = 0
    discarded_bytes: int = 0


class LineSplitter:
    """Splits a byte stream into complete lines without ever holding more than ``max_line_bytes``.

    ``push`` returns only whole lines (each ending in ``b"\\n"``), possibly many at once, and keeps
    the partial tail. A line longer than ``max_line_bytes`` is cut at the maximum: the cut piece is
    emitted with a ``b"\\n"`` and the rest of that line, up to its newline, is discarded as it
    arrives (counted in ``discarded_bytes``, never buffered). ``long_lines`` counts such lines.
    """

    __slots__ = ("_discarding", "_tail", "counts", "max_line_bytes")

    def __init__(self, max_line_bytes: int, counts: CutCounts | None = None) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be at least 1")
        self.max_line_bytes = max_line_bytes
        self.counts = CutCounts() if counts is None else counts
        self._tail = b""
        self._discarding = False  # inside the rest of a line that was already cut

    @property
    def long_lines(self) -> int:
        return self.counts.long_lines

    @property
    def discarded_bytes(self) -> int:
        return self.counts.discarded_bytes

    @property
    def pending(self) -> int:
        """Bytes of the partial last line currently held (at most ``max_line_bytes``)."""
        return len(self._tail)

    def push(self, data: bytes) -> bytes:
        """Take the next bytes of the stream; return the lines they complete (maybe ``b""``)."""
        if self._discarding:
            nl = data.find(b"\n")
            if nl < 0:
                self.counts.discarded_bytes += len(data)
                return b""
            self.counts.discarded_bytes += nl
            self._discarding = False
            data = data[nl + 1 :]
        last = data.rfind(b"\n")
        if last < 0:
            complete, tail = b"", self._tail + data
        else:
            # One copy of the complete part (a memoryview slice avoids a second one).
            if self._tail:
                complete = self._tail + memoryview(data)[: last + 1]
            else:
                complete = data if last + 1 == len(data) else bytes(memoryview(data)[: last + 1])
            tail = data[last + 1 :]
        limit = self.max_line_bytes
        if len(complete) > limit + 1:
            complete = self._cut_long_lines(complete)
        if len(tail) > limit:
            # The line is already too long and not finished: emit the cut piece now, drop the rest.
            self.counts.long_lines += 1
            self.counts.discarded_bytes += len(tail) - limit
            complete += tail[:limit] + b"\n"
            tail = b""
            self._discarding = True
        self._tail = tail
        return complete

    def flush(self) -> bytes:
        """End of input: the held partial line with a ``b"\\n"`` added (``b""`` when none)."""
        tail, self._tail = self._tail, b""
        self._discarding = False
        return tail + b"\n" if tail else b""

    def _cut_long_lines(self, buf: bytes) -> bytes:
        # A line longer than the limit contains a whole aligned window of half the limit with no
        # newline in it, so probing windows with bytes.find finds every long line without a
        # per-line loop.
        limit = self.max_line_bytes
        window = max(1, (limit + 1) // 2)
        pieces: list[bytes] = []
        done = 0  # everything before this offset is already in pieces or discarded
        start = 0
        size = len(buf)
        while start < size:
            if start < done or buf.find(b"\n", start, start + window) >= 0:
                start += window
                continue
            line_start = buf.rfind(b"\n", 0, start) + 1
            line_end = buf.find(b"\n", start)  # buf ends with a newline, so this is found
            if line_end - line_start > limit:
                pieces.append(buf[done : line_start + limit])
                pieces.append(b"\n")
                self.counts.long_lines += 1
                self.counts.discarded_bytes += line_end - line_start - limit
                done = line_end + 1
            start = line_end + 1
        if not pieces:
            return buf
        pieces.append(buf[done:])
        return b"".join(pieces)
