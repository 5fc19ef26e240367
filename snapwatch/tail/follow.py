"""Following one log file exactly once: rotation, truncation, catch-up after downtime, checkpoints."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime

from snapwatch.model import Checkpoint, Gap
from snapwatch.tail.events import Chunk, Event, Notice, NoticeKind
from snapwatch.tail.gzipped import GzipDamage
from snapwatch.tail.rotation import (
    BLOCK,
    FP_BYTES,
    Backup,
    OpenFile,
    Splitter,
    fingerprint,
    fingerprint_matches,
    last_line_end,
    locate,
    open_file,
    regular,
    rotated_backups,
)

_AFTER_BYTES = 64  # bytes past the checkpoint compared on every poll, besides the fingerprint's
# A file deleted this long before the oldest backup newer than it was renamed was deleted by an earlier
# rotation than that one: the file that followed it is gone too (timestamps may be a clock tick coarse).
_ROTATION_SLACK_NS = 50_000_000
Ident = tuple[int, int, bytes]
_MAX_POLL_BYTES = 16 * BLOCK  # one poll returns at most about this much, so memory stays flat


def _and_the_new_one(rotated: int) -> str:
    if not rotated:
        return "the new one"
    return f"{rotated} rotated file{'s' if rotated > 1 else ''} and the new one"




def _mtime(ns: int | None) -> datetime | None:
    return datetime.fromtimestamp(ns / 1e9, UTC) if ns else None


class FileTracker:
    """Follows one path exactly once; ``poll()`` reads whatever is new and never blocks.

    The chain holds, in order, the files still to be read: a rotated-away file stays open (by
    descriptor) and is read to its end before the next one; a file is left only once a newer one
    holds data, so a writer that still finishes a line in the old file loses nothing.
    """

    def __init__(self, source: str, path: str, checkpoint: Checkpoint | None, *, start_at: str,
                 splitter_factory: Callable[[], Splitter], block_size: int = BLOCK,
                 known_backups: set[Ident] | None = None) -> None:
        self.source, self.path = source, path
        self._cp = checkpoint
        self._start_at = start_at  # "end" | "beginning": only while there is no checkpoint
        self._new = splitter_factory
        self._block = block_size
        self._chain: list[OpenFile] = []
        # Backups that predate the live file, by (dev, inode, first bytes): a backup deleted by the
        # rotation frees its inode for a new file, which must not be taken for the old one.
        self._known_old: set[Ident] = set()
        # While the path is absent: the backups there were then. Any other found when a file appears at
        # the path rotated away before its first read, and is read first.
        self._absent_backups = known_backups
        self._said_absent = False
        self._said_refused = False
        self._started = False
        self.behind = False  # the last poll stopped at its byte budget: poll again soon

    # -- opening -------------------------------------------------------------------------------

    def _open(self, name: str, gz: bool, expect: tuple[int, int] | None) -> OpenFile | None:
        return open_file(name, gz, expect, self._new)

    def _scan(self) -> list[Backup]:
        """Rotated backups not already in the chain, newest first."""
        chain_ids = {(f.dev, f.ino) for f in self._chain}
        return [c for c in rotated_backups(self.path) if (c.dev, c.ino) not in chain_ids]

    def _start(self, out: list[Event], st: os.stat_result) -> None:
        """First look at the path: position from the checkpoint, or from ``start_at``."""
        cp = self._cp
        if cp is None or cp.inode == 0:
            live = self._open(self.path, False, None)
            if live is None:
                return
            if cp is None and self._start_at == "end" and not self._started:
                live.seek(last_line_end(live))
            unread = self._appeared_backups(live)
            self._chain = [*unread, live]
            self._known_old = {c.ident for c in rotated_backups(self.path)}
            out.append(self._chunk(self._chain[0], b"", self._chain[0].cp_at))
            return
        self._known_old = {c.ident for c in rotated_backups(self.path)}
        if (st.st_dev, st.st_ino) == (cp.dev, cp.inode) and st.st_size >= cp.offset:
            live = self._open(self.path, False, (cp.dev, cp.inode))
            if live is not None:
                live.seek(cp.offset)
                if fingerprint_matches(cp.fingerprint, live.head, live.recent):
                    self._chain = [live]
                    return
                live.close()
        # The checkpointed file is no longer (intact) at the path: find it among the backups. The live
        # file is opened before the backups are listed, and the listing is taken again when a backup
        # was renamed before it could be opened: a rotation meanwhile must not hide a file.
        for _attempt in range(5):
            chain = self._catch_up_chain(out, cp, st)
            if chain is not None:
                break
        else:
            chain = []
            out.append(Notice(self.source, self.path, NoticeKind.ERROR, "the backups kept moving; looking again"))
        self._chain = chain
        if chain:
            out.append(self._chunk(chain[0], b"", chain[0].cp_at))

    def _catch_up_chain(self, out: list[Event], cp: Checkpoint, st: os.stat_result) -> list[OpenFile] | None:
        """The files to read after downtime, oldest first; None when a rotation moved one meanwhile."""
        live = self._open(self.path, False, None)
        cands = rotated_backups(self.path)
        self._known_old = {c.ident for c in cands}
        if live is not None:
            cands = [c for c in cands if (c.dev, c.ino) != (live.dev, live.ino)]
        found = locate(cands, cp.offset, cp.fingerprint, (cp.dev, cp.inode))
        chain: list[OpenFile] = []
        said: list[Event] = []
        if found is not None:
            c = cands[found]
            f = self._open(c.name, c.gz, (c.dev, c.ino))
            if f is None:
                self._abandon(chain, live)
                return None
            f.seek(cp.offset)
            chain.append(f)
            said.append(Notice(self.source, self.path, NoticeKind.CATCH_UP,
                               f"resuming in {c.name} at byte {cp.offset}"))
            newer = cands[:found]
        else:
            newer = [c for c in cands if c.mtime_ns > cp.mtime_ns]
            until = min((c.mtime_ns for c in newer), default=st.st_mtime_ns)
            said.append(Gap(self.source, self.path, cp.dev, cp.inode, None, _mtime(cp.mtime_ns), _mtime(until),
                            "the checkpointed file is gone (rotated away or deleted while stopped)"))
        for c in reversed(newer):
            f = self._open(c.name, c.gz, (c.dev, c.ino))
            if f is None:
                self._abandon(chain, live)
                return None
            chain.append(f)
        if live is not None:
            chain.append(live)
        out.extend(said)
        return chain

    def _appeared_backups(self, live: OpenFile) -> list[OpenFile]:
        """Backups that appeared while the path was absent (rotated away before their first read), oldest first."""
        if self._absent_backups is None:
            return []
        known, self._absent_backups = self._absent_backups, None
        found = []
        for c in reversed(rotated_backups(self.path)):
            if c.ident not in known and (c.dev, c.ino) != (live.dev, live.ino):
                f = self._open(c.name, c.gz, (c.dev, c.ino))
                if f is not None:
                    found.append(f)
        return found

    @staticmethod
    def _abandon(chain: list[OpenFile], live: OpenFile | None) -> None:
        for f in [*chain, live]:
            if f is not None:
                f.close()

    # -- polling -------------------------------------------------------------------------------

    def poll(self, budget: int = _MAX_POLL_BYTES) -> list[Event]:
        """Read every file of the chain as far as it goes; return the chunks, gaps and notices."""
        out: list[Event] = []
        try:
            st: os.stat_result | None = os.stat(self.path)
        except OSError:
            st = None
        kind = regular(st) if st is not None else None
        if st is not None and kind is not None:
            if not self._said_refused:  # a FIFO would block a read, a device never end: leave it alone
                out.append(Notice(self.source, self.path, NoticeKind.REFUSED, f"{self.path} is {kind}, not a "
                                  "regular file: snapwatch follows only regular files and leaves it alone"))
                self._said_refused = True
            if not self._chain:
                return out
            st = None  # a file still open from before is read to its end, as if the path were gone
        else:
            self._said_refused = False
        if not self._chain:
            if st is None:
                if self._absent_backups is None and not self._said_absent:
                    self._absent_backups = {c.ident for c in rotated_backups(self.path)}
                if not self._said_absent and not self._started:
                    out.append(Notice(self.source, self.path, NoticeKind.ABSENT,
                                      "does not exist yet; waiting for it to appear"))
                self._said_absent = True
                return out
            if self._said_absent or self._started:
                out.append(Notice(self.source, self.path, NoticeKind.APPEARED,
                                  "appeared; reading it from its beginning"))
                if self._cp is None:
                    self._start_at = "beginning"
            self._start(out, st)
            self._started = True
            self._said_absent = False
        elif st is not None and (st.st_dev, st.st_ino) not in {(f.dev, f.ino) for f in self._chain}:
            self._rotated(out)
        elif st is not None and (st.st_dev, st.st_ino) == (self._chain[-1].dev, self._chain[-1].ino):
            self._check_truncated(out)
        self.behind = False
        self._read_chain(out, budget, st)
        return out

    def _rotated(self, out: list[Event]) -> None:
        """A new file is at the path: queue the backups newer than ours, then the new file."""
        # Open the new file before listing the backups: a rotation in between then shows the file just
        # opened among the backups (it is queued last anyway) instead of hiding the one that was live.
        live = self._open(self.path, False, None)
        if live is not None and (live.dev, live.ino) in {(f.dev, f.ino) for f in self._chain}:
            live.close()
            live = None
        skip = {(f.dev, f.ino) for f in self._chain}
        if live is not None:
            skip.add((live.dev, live.ino))
        for _attempt in range(5):  # a backup renamed before it was opened: list them again
            backups = rotated_backups(self.path)
            newer = [c for c in backups if (c.dev, c.ino) not in skip and c.ident not in self._known_old
                     and not c.gz]
            opened = [self._open(c.name, False, (c.dev, c.ino)) for c in reversed(newer)]
            if all(f is not None for f in opened) or _attempt == 4:
                break
            self._abandon([f for f in opened if f is not None], None)
        out.append(Notice(self.source, self.path, NoticeKind.ROTATED,
                          "rotated; finishing the old file, then " + _and_the_new_one(len(newer))))
        self._say_lost(out, list(reversed(newer)), opened)
        self._chain.extend(f for f in opened if f is not None)
        if live is not None:
            self._chain.append(live)
        self._known_old = {c.ident for c in backups}

    def _say_lost(self, out: list[Event], newer: list[Backup], opened: list[OpenFile | None]) -> None:
        """Files rotated away and deleted before they could be read while behind: a log gap, never silence."""
        for c, f in zip(newer, opened, strict=True):
            if f is None:
                out.append(Gap(self.source, self.path, c.dev, c.ino, c.size, _mtime(c.mtime_ns), None,
                               f"{c.name} was rotated away and deleted before it could be read"))
        prev = self._chain[-1] if self._chain else None
        if prev is None or prev.fd is None or not newer:
            return
        gone = os.fstat(prev.fd)
        oldest = newer[0]
        # Deleted by an earlier rotation than the one that renamed the oldest backup still there: the file
        # that followed it was pushed out as well, unread.
        if gone.st_nlink == 0 and gone.st_ctime_ns + _ROTATION_SLACK_NS < oldest.ctime_ns:
            out.append(Gap(self.source, self.path, prev.dev, prev.ino, None, _mtime(gone.st_mtime_ns),
                           _mtime(oldest.mtime_ns), f"the log rotated more often than its backups are kept while "
                           f"snapwatch was behind: files between {prev.name} and {oldest.name} were deleted unread"))

    def _check_truncated(self, out: list[Event]) -> None:
        """copytruncate and friends: the live file is shorter, or regrew with other bytes."""
        f = self._chain[-1]
        if f.fd is None:
            return
        st = os.fstat(f.fd)
        base = max(f.cp_at - FP_BYTES, 0)
        n = min(len(f.recent), f.cp_at - base + _AFTER_BYTES)
        # The bytes around the checkpoint and the file's first bytes: a file truncated and regrown past the
        # offset within a poll, with lines alike near the offset, still differs at its start.
        if st.st_size >= f.read_at and os.pread(f.fd, n, base) == f.recent[:n] and \
                os.pread(f.fd, len(f.head), 0) == f.head:
            return
        out.append(Notice(self.source, self.path, NoticeKind.TRUNCATED, "truncated; reading it again from the start"))
        fp = f.fingerprint(f.cp_at)
        cands = self._scan()
        found = locate(cands, f.cp_at, fp)
        insert: list[OpenFile] = []
        if found is not None:
            for i in range(found, -1, -1):
                c = cands[i]
                g = self._open(c.name, c.gz, (c.dev, c.ino))
                if g is None:
                    continue
                if i == found:
                    g.seek(f.cp_at)
                insert.append(g)
        else:
            tail = f.splitter.flush()
            if tail:
                out.append(self._chunk(f, tail, f.read_at))
            if f.last_size > f.read_at:
                out.append(Gap(self.source, self.path, f.dev, f.ino, f.last_size - f.read_at,
                               _mtime(f.mtime_ns), _mtime(st.st_mtime_ns), "truncated before it was read"))
        f.splitter, f.read_at, f.cp_at, f.recent, f.head, f.last_size = self._new(), 0, 0, b"", b"", 0
        self._chain[-1:-1] = insert
        self._known_old = {c.ident for c in rotated_backups(self.path)}
        first = insert[0] if insert else f
        out.append(self._chunk(first, b"", first.cp_at))  # the position moved back: say so at once

    def _read_chain(self, out: list[Event], budget: int, st: os.stat_result | None) -> None:
        while self._chain:
            f = self._chain[0]
            later = self._chain[1:]
            # Ask before reading: once a newer file holds data, the writer has finished this one.
            # A deleted file is finished too: nobody could read what is still written to it, and a
            # checkpoint must not stay on an inode number the filesystem may hand out again.
            finished = f.fd is None or os.fstat(f.fd).st_nlink == 0 or any(g.has_data() for g in later)
            budget -= self._read(f, out, budget)
            if budget <= 0:
                self.behind = True
                return
            if not later:
                if f.fd is not None and st is None and os.fstat(f.fd).st_nlink == 0:
                    out.append(Notice(self.source, self.path, NoticeKind.DELETED, f"{f.name} was deleted"))
                    self._finish(f, out, None)
                return
            if not finished:
                return
            self._finish(f, out, later[0])

    def _finish(self, f: OpenFile, out: list[Event], nxt: OpenFile | None) -> None:
        tail = f.splitter.flush()  # a last line without its newline will never be completed now
        if tail:
            out.append(self._chunk(f, tail, f.read_at))
        f.close()
        self._chain.pop(0)
        if nxt is not None:
            out.append(self._chunk(nxt, b"", nxt.cp_at))
        else:
            cp = self._cp = Checkpoint(self.path, 0, 0, 0, fingerprint(b"", b""), f.mtime_ns)
            out.append(Chunk(self.source, self.path, f.name, 0, 0, b"", 0, 0, cp))
            self._absent_backups = {c.ident for c in rotated_backups(self.path)}

    def _read(self, f: OpenFile, out: list[Event], budget: int) -> int:
        """Read ``f`` to its end (or the budget); emit one chunk per block that completes lines."""
        total = 0
        try:
            if f.fd is not None:
                st = os.fstat(f.fd)
                f.last_size, f.mtime_ns = st.st_size, st.st_mtime_ns
            while total < budget:
                buf = f.read(self._block)
                if not buf:
                    break
                total += len(buf)
                lines = f.splitter.push(buf)
                base = max(f.cp_at - FP_BYTES, 0)
                recent = f.recent + buf
                f.read_at += len(buf)
                cp_at = f.read_at - f.splitter.pending
                new_base = max(cp_at - FP_BYTES, 0)
                f.recent = recent[new_base - base :]
                if cp_at > f.cp_at or lines:
                    out.append(self._chunk(f, lines, cp_at))
        except GzipDamage as exc:  # what came before the damage was read and counted; the rest is lost
            out.append(Notice(self.source, self.path, NoticeKind.ERROR, str(exc)))
            out.append(Gap(self.source, self.path, f.dev, f.ino, None, None, _mtime(f.mtime_ns),
                           f"{exc}: the rest of it is lost"))
            f.close()
        except OSError as exc:
            out.append(Notice(self.source, self.path, NoticeKind.ERROR, f"reading {f.name}: {exc}"))
        return total

    def _chunk(self, f: OpenFile, data: bytes, cp_at: int) -> Chunk:
        start = f.cp_at
        f.cp_at = cp_at
        fp = f.fingerprint(cp_at)  # ``recent`` ends at ``read_at``, starts FP_BYTES before ``cp_at`` (or at 0)
        cp = Checkpoint(self.path, f.dev, f.ino, cp_at, fp, f.mtime_ns)
        self._cp = cp
        return Chunk(self.source, self.path, f.name, f.dev, f.ino, data, start, cp_at, cp)

    def close(self) -> None:
        for f in self._chain:
            f.close()
        self._chain = []
