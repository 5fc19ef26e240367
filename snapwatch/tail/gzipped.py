"""Gzip backups read forward up to any damage: everything before a truncation, a corrupt block or a bad CRC is kept."""

from __future__ import annotations

import contextlib
import struct
import zlib
from typing import BinaryIO

_IN_BLOCK = 64 << 10  # compressed bytes read at a time
_MAGIC = b"\x1f\x8b"
_FEXTRA, _FNAME, _FCOMMENT, _FHCRC = 4, 8, 16, 2


class GzipDamage(Exception):
    """A gzip file is damaged at decompressed byte ``at``: everything before it was read; the rest is lost."""

    def __init__(self, name: str, at: int, reason: str) -> None:
        super().__init__(f"{name} is damaged after byte {at} of its content ({reason})")
        self.name, self.at, self.reason = name, at, reason


class GzipStream:
    """The decompressed bytes of a gzip file (one member or several), read forward in bounded pieces.

    ``read(n)`` returns up to ``n`` bytes, ``b""`` at a clean end. A damaged file (cut short, a corrupt
    deflate block, a header that is not gzip, a CRC or length that does not match) yields every byte
    decompressed before the damage, and only then raises GzipDamage, at the next read and every one after.
    The CRC is checked after the member's bytes were handed out: they are kept, the damage is still said.
    """

    def __init__(self, raw: BinaryIO, name: str) -> None:
        self._raw, self.name = raw, name
        self._buf = b""  # compressed bytes read but not yet decompressed
        self._out = b""  # decompressed bytes not yet handed out
        self._d: zlib._Decompress | None = None  # the current member's decompressor (None: at a header)
        self._crc = self._size = 0
        self._eof = False  # the raw file is read to its end
        self._done = False
        self._damage: GzipDamage | None = None
        self.position = 0  # decompressed bytes handed out so far

    def read(self, n: int) -> bytes:
        while not self._out and not self._done:
            self._step(n)
        if not self._out:
            if self._damage is not None:
                raise self._damage
            return b""
        data, self._out = self._out[:n], self._out[n:]
        self.position += len(data)
        return data

    def read_exact(self, n: int) -> bytes:
        """``n`` bytes, fewer only at the end; raises GzipDamage when the damage comes first."""
        parts, left = [], n
        while left > 0 and (data := self.read(left)):
            parts.append(data)
            left -= len(data)
        return b"".join(parts)

    def close(self) -> None:
        """Stop reading (the raw file is its opener's to close)."""
        self._done, self._out, self._buf = True, b"", b""

    def skip(self, n: int) -> int:
        """Read and drop ``n`` bytes (fewer at the end); raises GzipDamage when the damage comes first."""
        left = n
        while left > 0:
            data = self.read(min(left, 1 << 20))
            if not data:
                break
            left -= len(data)
        return n - left

    def _more(self) -> bool:
        if self._eof:
            return False
        chunk = self._raw.read(_IN_BLOCK)
        if not chunk:
            self._eof = True
            return False
        self._buf += chunk
        return True

    def _fail(self, reason: str) -> None:
        self._done = True
        self._damage = GzipDamage(self.name, self.position + len(self._out), reason)

    def _step(self, n: int) -> None:
        if self._d is None:
            self._header()
            return
        if not self._buf and not self._more():
            with contextlib.suppress(zlib.error):
                self._out += self._d.flush()  # what the decompressor still holds is readable
            self._fail("the file ends before its compressed data does: it was cut short")
            return
        try:
            out = self._d.decompress(self._buf, max(n, 1 << 16))
        except zlib.error as exc:
            self._fail(f"corrupt compressed data: {exc}")
            return
        self._buf = self._d.unconsumed_tail if not self._d.eof else self._d.unused_data
        self._crc, self._size = zlib.crc32(out, self._crc), self._size + len(out)
        self._out += out
        if self._d.eof:
            self._trailer()

    def _trailer(self) -> None:
        while len(self._buf) < 8 and self._more():
            pass
        if len(self._buf) < 8:
            self._fail("the file ends inside its gzip trailer: it was cut short")
            return
        crc, size = struct.unpack("<II", self._buf[:8])
        self._buf = self._buf[8:]
        if crc != self._crc or size != self._size & 0xFFFFFFFF:
            self._fail("its CRC check failed: the bytes before may be altered as well")
            return
        self._d = None

    def _header(self) -> None:
        """Parse a member's header; at the end of the file (or trailing zeros) the stream ends cleanly."""
        while len(self._buf) < 10 and self._more():
            pass
        while self._buf[:1] == b"\0":  # zeros after the last member (padding): the end, if nothing else follows
            self._buf = self._buf.lstrip(b"\0")
            if not self._buf and not self._more():
                break
        if not self._buf and self._eof:
            self._done = True
            return
        while len(self._buf) < 10 and self._more():
            pass
        if len(self._buf) < 10 or self._buf[:2] != _MAGIC or self._buf[2] != 8:
            self._fail("not a gzip header" if len(self._buf) >= 10 else "the file ends inside a gzip header")
            return
        flags, pos = self._buf[3], 10
        try:
            if flags & _FEXTRA:
                pos = self._need(pos + 2)
                pos = self._need(pos + struct.unpack("<H", self._buf[pos - 2 : pos])[0])
            for flag in (_FNAME, _FCOMMENT):
                if flags & flag:
                    while (end := self._buf.find(b"\0", pos)) < 0:
                        if not self._more():
                            raise EOFError
                    pos = end + 1
            if flags & _FHCRC:
                pos = self._need(pos + 2)
        except EOFError:
            self._fail("the file ends inside a gzip header")
            return
        self._buf = self._buf[pos:]
        self._d = zlib.decompressobj(-zlib.MAX_WBITS)
        self._crc = self._size = 0

    def _need(self, end: int) -> int:
        while len(self._buf) < end:
            if not self._more():
                raise EOFError
        return end
