"""Colour for text on a terminal: when to use it (``--color``, ``NO_COLOR``) and what it marks."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TextIO

_RESET = "\033[0m"
_CODES = {"bold": "1", "red": "31", "yellow": "33", "green": "32", "dim": "2"}
# What a reader's eye should find first: headings, then severity words and states.
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(\s*)(Verdict|Evidence|Remediation, in order|Other possible causes|Ruled out|Incidents|"
                r"Security|open incidents|recent incidents)(:)", re.M), "bold"),
    (re.compile(r"\b(critical|FAILED|failed)\b"), "red"),
    (re.compile(r"\b(warning|pending)\b"), "yellow"),
    (re.compile(r"\b(healthy|delivered|resolved)\b"), "green"),
)


def wanted(mode: str, stream: TextIO, environ: Mapping[str, str]) -> bool:
    """``always``, ``never``, or ``auto``: a terminal, no ``NO_COLOR`` (https://no-color.org), not a dumb one."""
    if mode != "auto":
        return mode == "always"
    if environ.get("NO_COLOR") or environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def colourize(text: str) -> str:
    """``text`` with its headings in bold and its severity words and states coloured (ANSI escapes)."""
    for pattern, style in _RULES:
        start = f"\033[{_CODES[style]}m"
        if style == "bold":
            text = pattern.sub(rf"\g<1>{start}\g<2>\g<3>{_RESET}", text)
        else:
            text = pattern.sub(rf"{start}\g<0>{_RESET}", text)
    return text
