"""Following a source: the files its path or glob names, polled on inotify wake-ups (in batches when busy)."""

from __future__ import annotations

import asyncio
import fnmatch
import glob
import logging
import os
import re
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

from watchfiles._rust_notify import RustNotify

from snapwatch.config.models import SourceConfig
from snapwatch.ingest.lines import LineSplitter
from snapwatch.model import Checkpoint
from snapwatch.tail.events import Chunk, Event, Notice, NoticeKind
from snapwatch.tail.follow import FileTracker
from snapwatch.tail.rotation import BLOCK, Splitter, identities

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Quiet:
    """No new bytes for ``flush_after`` since the last data: a held record may be flushed now."""

    source: str


_MAGIC = re.compile(r"[*?\[]")
# While a file grows, it is read again this many seconds after the read that found new bytes, whatever
# inotify says: one read (and one batch downstream) per interval instead of one per write. The second
# interval applies once reads keep finding bytes (a busy file): every batch costs a wake-up, a read and
# a turn of the daemon's loop besides its records, so fewer, larger batches cost less per record.
BATCH_EVERY = 0.05
BUSY_EVERY = 0.08


class Follower:
    """All files of one source: its path, or each file its glob matches (files may appear later).

    ``checkpoints`` maps a file's path to where it was left. ``start_at`` (``end``: only lines
    written from now on) applies to files present at the first poll that have no checkpoint; a file
    that appears later is read from its beginning. Call ``poll()`` after a change, or iterate
    ``events()`` to be woken by inotify.
    """

    def __init__(self, source: SourceConfig, checkpoints: Mapping[str, Checkpoint] | None = None, *,
                 splitter_factory: Callable[[], Splitter] | None = None, block_size: int = BLOCK) -> None:
        self.source = source
        self._checkpoints = dict(checkpoints or {})
        self._new: Callable[[], Splitter] = splitter_factory or (
            lambda: LineSplitter(source.max_line_bytes))
        self._block = block_size
        self._is_glob = bool(_MAGIC.search(source.path))
        self._trackers: dict[str, FileTracker] = {}
        self._polled = False
        self._at_first_poll: set[tuple[int, int, bytes]] = set()
        self._said_none = False
        if not self._is_glob:
            self._add(source.path)

    @property
    def behind(self) -> bool:
        """The last poll stopped at its byte budget; poll again without waiting for an event."""
        return any(t.behind for t in self._trackers.values())

    def _add(self, path: str) -> None:
        start_at = self.source.start_at if not self._polled else "beginning"
        # A file that matches the glob later: its backups not there at the first poll rotated away unread.
        known = self._at_first_poll if self._polled else None
        self._trackers[path] = FileTracker(self.source.path, path, self._checkpoints.get(path),
                                           start_at=start_at, splitter_factory=self._new,
                                           block_size=self._block, known_backups=known)

    def poll(self) -> list[Event]:
        """Read what is new in every file of the source; never blocks, never waits."""
        out: list[Event] = []
        if self._is_glob:
            if not self._polled:
                self._at_first_poll = identities(glob.glob(self.source.path + "*"))
            matches = sorted(p for p in glob.glob(self.source.path) if os.path.isfile(p))
            for path in matches:
                if path not in self._trackers:
                    self._add(path)
            if not matches and not self._trackers and not self._said_none:
                out.append(Notice(self.source.path, self.source.path, NoticeKind.ABSENT,
                                  "no file matches yet; waiting"))
                self._said_none = True
        for tracker in list(self._trackers.values()):
            out.extend(tracker.poll())
        self._polled = True
        return out

    def close(self) -> None:
        for tracker in self._trackers.values():
            tracker.close()

    def watch_dir(self) -> str:
        """The directory to watch: the source's parent (the part of a glob before its first pattern)."""
        parts = self.source.path.split(os.sep)
        fixed = [p for p in parts[:-1]]
        for i, part in enumerate(parts[:-1]):
            if _MAGIC.search(part):
                fixed = parts[:i]
                break
        return os.sep.join(fixed) or os.sep

    def _wanted(self, _change: object, path: str) -> bool:
        name = os.path.basename(path)
        pattern = os.path.basename(self.source.path)
        return path == self.watch_dir() or fnmatch.fnmatchcase(name, pattern + "*")

    def _watch(self, notify: Callable[[], None], wanted: threading.Event, stop: threading.Event,
               recheck: float, debounce_ms: int, step_ms: int) -> None:
        """The watcher thread, for the life of an iteration: watches with inotify while ``wanted`` is set.

        ``notify`` is called once a watch is in place (what was written before it is read by the poll
        that call causes), on each change of the source's files, and every ``recheck`` seconds.
        """
        paused = _Either(stop, wanted)
        while not stop.is_set():
            if not wanted.wait(recheck):
                continue
            directory = self.watch_dir()
            try:
                ident = os.stat(directory)
                with RustNotify([directory], False, False, 300, self._is_glob, False) as watcher:
                    notify()
                    while not paused.is_set():
                        changes = watcher.watch(debounce_ms, step_ms, int(recheck * 1000), paused)
                        if isinstance(changes, set):
                            if not any(self._wanted(c, p) for c, p in changes):
                                continue
                        elif changes != "timeout":
                            break  # stopped or paused
                        notify()
                        now = os.stat(directory)
                        if (now.st_dev, now.st_ino) != (ident.st_dev, ident.st_ino):
                            break  # the directory was replaced: watch the new one
            except Exception as exc:  # gone, or cannot be watched: try again after recheck
                log.debug("cannot watch %s yet: %s", directory, exc)
                notify()
                stop.wait(recheck)

    async def events(self, *, flush_after: float = 0.5, recheck: float = 5.0, debounce_ms: int = 50,
                     step_ms: int = 20, batch_every: float = BATCH_EVERY,
                     busy_every: float = BUSY_EVERY) -> AsyncIterator[Event | Quiet]:
        """Follow forever: poll on an inotify wake-up when idle, every ``batch_every`` seconds while bytes
        arrive, every ``busy_every`` once two polls in a row found some.

        Yields what ``poll()`` returns, and a ``Quiet`` once ``flush_after`` seconds pass without new
        bytes after some arrived. A poll that found new bytes is followed by another ``batch_every``
        later, without waiting for inotify; while those keep finding bytes the inotify watch is put
        away (a busy file costs one read per interval, not one wake-up per write), and the first that
        finds nothing brings it back. Watches the parent directory, so rename rotation never deafens
        it; when that directory is removed and recreated the watch starts again. The watching is done
        by one thread for the life of the iteration. Stop by leaving the loop.
        """
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        stop, wanted = threading.Event(), threading.Event()

        def notify() -> None:
            if wake.is_set():
                return  # a wake-up is already owed: the poll it causes reads this change too
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop is closed: the iteration is over
                stop.set()

        wanted.set()
        thread = threading.Thread(target=self._watch, args=(notify, wanted, stop, recheck, debounce_ms, step_ms),
                                  name=f"watch {self.source.path}", daemon=True)
        thread.start()
        try:
            owed = False
            streak = 0  # polls in a row that found new bytes
            while True:
                wake.clear()
                events = self.poll()
                for event in events:
                    yield event
                streak = streak + 1 if any(isinstance(e, Chunk) and e.data for e in events) else 0
                owed |= streak > 0
                if self.behind:
                    await asyncio.sleep(0)
                    continue
                if streak > 1:
                    wanted.clear()  # streaming: read on the timer alone
                elif not wanted.is_set():
                    wanted.set()  # quiet again: the watch is back (its first wake-up re-reads)
                    continue
                if streak:
                    await asyncio.sleep(busy_every if streak > 1 else batch_every)
                    continue
                try:
                    await asyncio.wait_for(wake.wait(), flush_after if owed else None)
                except TimeoutError:
                    owed = False
                    yield Quiet(self.source.path)
        finally:
            stop.set()
            thread.join(1.0)
            self.close()


class _Either:
    """Set once ``stop`` is set or ``wanted`` is cleared: what the Rust watcher checks to return."""

    def __init__(self, stop: threading.Event, wanted: threading.Event) -> None:
        self._stop, self._wanted = stop, wanted

    def is_set(self) -> bool:
        return self._stop.is_set() or not self._wanted.is_set()
