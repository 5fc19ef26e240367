"""Saving a sequence that grows at one end by its changes: numbered rows, of which only the newest ever changes.

The error-rate window's buckets and the history's accepted runs are such sequences: items are appended with
increasing numbers (``seq``), dropped from the old end (or all at once), and only the newest one is updated
in place, which raises its ``version`` (its count). So what changed since the last save is found by walking
back from the newest item until one is as it was saved: the cost of a save is the change, not the length of
the sequence. Each row is a JSON-ready list whose first element is the item's ``seq``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar


@dataclass(frozen=True, slots=True)
class Mark:
    """Where the last save left a sequence: its lowest live ``seq`` (``floor``), and the newest item's
    ``seq`` and ``version`` as saved. ``UNSAVED`` is before any save: everything is written."""

    floor: int
    seq: int
    version: int


UNSAVED = Mark(-1, -1, -1)


@dataclass(frozen=True, slots=True)
class RowChanges:
    """What to save of a sequence since a ``Mark``: the new or changed rows (oldest first), the lowest live
    ``seq`` when it moved (rows below it are gone; None: it did not move), and the mark to pass next time."""

    rows: list[list[Any]]
    floor: int | None
    mark: Mark


class Numbered(Protocol):
    @property
    def seq(self) -> int: ...


N = TypeVar("N", bound=Numbered)


def changes_since(items: Sequence[N], mark: Mark, next_seq: int, version: Callable[[N], int],
                  row: Callable[[N], list[Any]]) -> RowChanges:
    """The changes of ``items`` (oldest first, ``seq`` increasing) since ``mark``; ``next_seq`` is the number
    the next item will get (an empty sequence's floor: every row saved before is gone)."""
    changed: list[list[Any]] = []
    for item in reversed(items):
        if item.seq < mark.seq or (item.seq == mark.seq and version(item) == mark.version):
            break  # this one is as saved, and only the newest item ever changes
        changed.append(row(item))
    changed.reverse()
    floor = items[0].seq if items else next_seq
    newest = items[-1] if items else None
    now = Mark(floor, mark.seq, mark.version) if newest is None else Mark(floor, newest.seq, version(newest))
    return RowChanges(changed, None if floor == mark.floor else floor, now)
