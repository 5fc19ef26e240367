"""LineSplitter: whole lines out whatever the cuts, bounded memory for lines without an end."""

from __future__ import annotations

import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st

from snapwatch.ingest.lines import LineSplitter


def split_all(data: bytes, cuts: list[int], limit: int) -> tuple[bytes, LineSplitter]:
    s = LineSplitter(limit)
    out = []
    last = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        piece = s.push(data[last:cut])
        assert piece == b"" or piece.endswith(b"\n")
        out.append(piece)
        last = max(last, cut)
    out.append(s.flush())
    return b"".join(out), s


def expected(data: bytes, limit: int) -> tuple[bytes, int, int]:
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    cut = [line[:limit] for line in lines]
    longs = [line for line in lines if len(line) > limit]
    return b"".join(line + b"\n" for line in cut), len(longs), sum(len(line) - limit for line in longs)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"bb", b"\n", b"xyz" * 7, b"\r\n", b"\xff"]), max_size=80).map(b"".join),
       st.lists(st.integers(0, 10**6), max_size=15), st.integers(1, 30))
def test_any_cuts_give_the_same_lines(data: bytes, cuts: list[int], limit: int) -> None:
    got, s = split_all(data, cuts, limit)
    want, longs, dropped = expected(data, limit)
    assert got == want
    assert (s.long_lines, s.discarded_bytes, s.pending) == (longs, dropped, 0)


def test_pending_and_flush() -> None:
    s = LineSplitter(1024)
    assert s.push(b"one\ntw") == b"one\n" and s.pending == 2
    assert s.push(b"o\nthree") == b"two\n" and s.pending == 5
    assert s.flush() == b"three\n" and s.pending == 0
    assert s.flush() == b""


def test_a_huge_line_without_newline_is_never_buffered() -> None:
    s = LineSplitter(1 << 16)
    block = b"x" * (1 << 20)
    tracemalloc.start()
    try:
        first = s.push(block)
        for _ in range(49):  # 50 MiB in all, no newline
            assert s.push(block) == b""
            assert s.pending == 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert first == b"x" * (1 << 16) + b"\n"
    assert peak < 8 << 20
    assert s.push(b"tail\nnext\n") == b"next\n"
    assert s.long_lines == 1 and s.discarded_bytes == 50 * (1 << 20) - (1 << 16) + 4


def test_long_lines_inside_a_big_buffer_are_cut() -> None:
    s = LineSplitter(1024)
    data = b"short\n" + b"y" * 5000 + b"\n" + b"z" * 1024 + b"\n" + b"w" * 3000 + b"\nend\n"
    assert s.push(data) == b"short\n" + b"y" * 1024 + b"\n" + b"z" * 1024 + b"\n" + b"w" * 1024 + b"\nend\n"
    assert s.long_lines == 2 and s.discarded_bytes == (5000 - 1024) + (3000 - 1024)
