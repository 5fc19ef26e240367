"""The shell steps of docs/systemd.md, so the system test runs what the guide tells people to run.

The guide's install steps are its numbered sections (``## 1. ...`` to ``## 5. ...``); each one's
```` ```sh ```` blocks are run in order, as written. Other fences (``ini``: file contents) are not commands.
The ``## Day to day`` block is a list of one-line commands; tests pick a line by what it does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "systemd.md"
_HEADING = re.compile(r"^## (?:(\d+)\. )?(.+)$")
_FENCE = re.compile(r"^```(\w*)\s*$")
_COMMENT = re.compile(r"\s+#\s.*$")


@dataclass(frozen=True)
class Section:
    number: int | None
    title: str
    blocks: tuple[str, ...]  # the sh blocks, verbatim


def sections(text: str | None = None) -> list[Section]:
    text = GUIDE.read_text(encoding="utf-8") if text is None else text
    out: list[Section] = []
    number: int | None = None
    title = ""
    blocks: list[str] = []
    fence: str | None = None
    body: list[str] = []
    for line in text.splitlines():
        m = _FENCE.match(line)
        if m and fence is None:
            fence, body = m.group(1), []
            continue
        if line.startswith("```") and fence is not None:
            if fence == "sh":
                blocks.append("\n".join(body) + "\n")
            fence = None
            continue
        if fence is not None:
            body.append(line)
            continue
        h = _HEADING.match(line)
        if h:
            if title:
                out.append(Section(number, title, tuple(blocks)))
            number = int(h.group(1)) if h.group(1) else None
            title, blocks = h.group(2), []
    if title:
        out.append(Section(number, title, tuple(blocks)))
    return out


def install_steps(text: str | None = None) -> list[Section]:
    """The numbered sections that have shell blocks, in order (the install)."""
    return [s for s in sections(text) if s.number is not None and s.blocks]


def commands(block: str) -> list[str]:
    """A block's commands, one per logical line (``\\`` continuations joined), comments dropped."""
    out: list[str] = []
    pending = ""
    for raw in block.splitlines():
        line = raw.rstrip()
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append(_COMMENT.sub("", pending + line).strip())
        pending = ""
    return out


def day_to_day(what: str, text: str | None = None) -> str:
    """The one command of the ``Day to day`` section that contains ``what`` (comment dropped)."""
    found = [c for s in sections(text) if s.title == "Day to day" for b in s.blocks for c in commands(b) if what in c]
    if len(found) != 1:
        raise AssertionError(f"docs/systemd.md 'Day to day' has {len(found)} commands with {what!r}, expected one")
    return found[0]


def alias_line(text: str | None = None) -> str:
    """The guide's ``alias snapwatch-svc=...`` line (it runs snapwatch as the service's user)."""
    found = [c for s in install_steps(text) for b in s.blocks for c in commands(b) if c.startswith("alias ")]
    if len(found) != 1:
        raise AssertionError(f"docs/systemd.md defines {len(found)} aliases, expected the one snapwatch-svc alias")
    return found[0]
