"""How the report writes values: escaping, times in the display zone, durations in words, anchors."""

from __future__ import annotations

import html
from datetime import datetime, timedelta, tzinfo
from typing import Final

from snapwatch import codec

# Month names spelled here, not by strftime("%b"), so the output does not depend on the locale.
_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def esc(value: object) -> str:
    """Text or attribute value, HTML-escaped (quotes too). Only XML's five entities are produced,
    so the inline SVG stays well-formed XML that tools can parse."""
    return html.escape(str(value), quote=True)


def local(at: datetime, tz: tzinfo) -> datetime:
    return at.astimezone(tz)


def iso(at: datetime, tz: tzinfo) -> str:
    """ISO 8601 with the zone's offset, to the second: what ``data-*`` attributes carry."""
    return local(at, tz).isoformat(timespec="seconds")


def day(at: datetime) -> str:
    """'4 Dec' (``at`` already in the display zone)."""
    return f"{at.day} {_MONTHS[at.month - 1]}"


def hhmm(at: datetime, tz: tzinfo) -> str:
    return local(at, tz).strftime("%H:%M")


def stamp(at: datetime, tz: tzinfo, *, seconds: bool = True) -> str:
    """'2025-12-04 13:47:02' in the display zone."""
    return local(at, tz).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def zone_name(tz: tzinfo, at: datetime) -> str:
    """'Europe/Paris (CET)', or the abbreviation alone for a fixed-offset zone such as UTC."""
    key = getattr(tz, "key", None)
    abbrev = local(at, tz).tzname() or ""
    if key and abbrev and key != abbrev:
        return f"{key} ({abbrev})"
    return str(key or abbrev or local(at, tz).strftime("UTC%z"))


def span(start: datetime, end: datetime, tz: tzinfo) -> str:
    """'2025-12-04 13:00 – 15:00', with the end's date too when it falls on another day."""
    a, b = local(start, tz), local(end, tz)
    tail = b.strftime("%H:%M") if a.date() == b.date() else b.strftime("%Y-%m-%d %H:%M")
    return f"{a.strftime('%Y-%m-%d %H:%M')} – {tail}"


def duration(delta: timedelta) -> str:
    """A duration in words, two units at most (``codec.duration``, the one spelling): '3 days 2 hours'."""
    return codec.duration(delta, words=True, parts=2)


def number(n: int) -> str:
    """'4,812': thousands separated the same way whatever the locale."""
    return f"{n:,}"


def anchor(incident_id: str) -> str:
    """The HTML id of an incident's diagnosis section: ``incident-`` and the id, with every character
    other than ASCII letters, digits and '-' written as ``_hex_``, so any id gives a distinct,
    URL-safe fragment (ids are hex hashes in practice, and stay as they are)."""
    out = [c if (c.isascii() and c.isalnum()) or c == "-" else f"_{ord(c):x}_" for c in incident_id]
    return "incident-" + "".join(out)


def plural(n: int, word: str, words: str | None = None) -> str:
    return f"{number(n)} {word if n == 1 else (words or word + 's')}"
