"""Gzip read forward up to any damage: all of an intact file, everything before a cut, a corrupt block or a bad CRC."""

from __future__ import annotations

import gzip
import io
import random

import pytest

from snapwatch.tail.gzipped import GzipDamage, GzipStream

RNG = random.Random(7)
DATA = b"".join(b"line %06d %s\n" % (i, bytes(RNG.choice(b"abcdefgh") for _ in range(RNG.randint(0, 90))))
                for i in range(60_000))


def _read(raw: bytes, n: int = 65536) -> tuple[bytes, GzipDamage | None]:
    stream = GzipStream(io.BytesIO(raw), "backup.gz")
    parts = []
    try:
        while block := stream.read(n):
            parts.append(block)
    except GzipDamage as damage:
        return b"".join(parts), damage
    return b"".join(parts), None


def test_an_intact_file_reads_whole_in_one_member_or_several_and_with_trailing_zeros() -> None:
    packed = gzip.compress(DATA)
    assert _read(packed) == (DATA, None)
    assert _read(packed + gzip.compress(b"more\n")) == (DATA + b"more\n", None)
    assert _read(packed + b"\0" * 512) == (DATA, None)
    assert _read(b"") == (b"", None)
    named = io.BytesIO()
    with gzip.GzipFile(filename="capi.log", mode="wb", fileobj=named, mtime=0) as g:  # a header with FNAME
        g.write(DATA[:1000])
    assert _read(named.getvalue(), 7) == (DATA[:1000], None)


def test_a_cut_file_yields_more_than_the_gzip_module_before_saying_where() -> None:
    packed = gzip.compress(DATA)
    cut = packed[: len(packed) // 2]
    got, damage = _read(cut)
    assert damage is not None and damage.at == len(got) and "cut short" in damage.reason
    assert DATA.startswith(got) and len(got) > len(DATA) // 3
    module = gzip.GzipFile(fileobj=io.BytesIO(cut))
    before = b""
    with pytest.raises(EOFError):
        while block := module.read(1 << 20):
            before += block
    assert len(got) > len(before)  # the stdlib drops what it had decompressed in the failing read


def test_a_bad_crc_keeps_the_bytes_and_still_says_so() -> None:
    packed = bytearray(gzip.compress(DATA))
    packed[-8] ^= 0xFF
    got, damage = _read(bytes(packed))
    assert got == DATA and damage is not None and "CRC" in damage.reason


def test_garbage_is_damage_at_byte_zero_and_the_damage_repeats() -> None:
    stream = GzipStream(io.BytesIO(b"this is not gzip at all"), "x.gz")
    for _ in range(2):
        with pytest.raises(GzipDamage, match="after byte 0"):
            stream.read(10)


def test_read_exact_and_skip_cross_block_bounds() -> None:
    stream = GzipStream(io.BytesIO(gzip.compress(DATA)), "x.gz")
    assert stream.read_exact(10) == DATA[:10]
    assert stream.skip(1_000_000) == 1_000_000
    assert stream.read_exact(100) == DATA[1_000_010:1_000_110]
    assert stream.position == 1_000_110
