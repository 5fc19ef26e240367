"""Raw log bytes made safe to parse: NUL bytes dropped, CRLF made LF, invalid UTF-8 replaced; each counted."""

from __future__ import annotations

from snapwatch.model import ParseStats


def clean(data: bytes, stats: ParseStats) -> bytes:
    """Whole lines cleaned line for line (the result has as many lines); counts into ``stats``
    (``nul_bytes``: lines holding NUL bytes, ``invalid_utf8``: lines not valid UTF-8). Returns ``data``
    itself when it needed nothing."""
    # NUL first, then CRLF, then UTF-8: the same order a line-by-line reader would apply.
    if b"\0" in data:
        i = data.find(b"\0")
        while i >= 0:
            stats.nul_bytes += 1
            eol = data.find(b"\n", i)
            i = -1 if eol < 0 else data.find(b"\0", eol)
        data = data.replace(b"\0", b"")
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            lines = data.split(b"\n")
            for i, line in enumerate(lines):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError:
                    stats.invalid_utf8 += 1
                    lines[i] = line.decode("utf-8", "replace").encode("utf-8")
            data = b"\n".join(lines)
    return data


def original_offset(original: bytes, cleaned: bytes, pos: int) -> int:
    """Where the line starting at ``cleaned[pos]`` starts in ``original`` (cleaning keeps lines 1:1)."""
    offset = 0
    for _ in range(cleaned.count(b"\n", 0, pos)):
        offset = original.find(b"\n", offset) + 1
    return offset
