"""The follower with real writers in tmp_path: every line exactly once across rotation and restarts."""

from __future__ import annotations

import gzip
import logging
import logging.handlers
import os
import shutil
from pathlib import Path

from snapwatch.config import SourceConfig
from snapwatch.tail.events import Chunk, NoticeKind
from snapwatch.tail.watch import Follower
from tests.helpers.files import append
from tests.helpers.follow import Reader, expected, numbered


def test_start_at_end_skips_old_lines_and_waits_for_a_partial_one(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(numbered(0, 10) + b"half a li")
    r = Reader(log, start_at="end")
    assert r.poll() == []
    # The first poll already fixes the position, so a restart does not apply start_at again.
    assert r.checkpoints[str(log)].offset == len(numbered(0, 10))
    append(log, b"ne\n" + numbered(10, 12))
    assert r.poll() == [b"half a line", *expected(10, 12)]
    append(log, numbered(12, 15))
    r2 = r.restart()
    assert r2.poll() == expected(12, 15)


def test_partial_last_line_is_emitted_only_when_completed(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"first\nsec")
    r = Reader(log)
    assert r.poll() == [b"first"]
    append(log, b"ond part")
    assert r.poll() == []
    append(log, b" done\nthird\n")
    assert r.poll() == [b"second part done", b"third"]


def test_rotating_file_handler_every_line_once_in_order(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    handler = logging.handlers.RotatingFileHandler(log, maxBytes=4000, backupCount=6)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("snapwatch.test.rotating")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        r = Reader(log)
        r.poll()
        for i in range(3000):
            logger.warning("line %06d some padding to make it longer", i)
            # Poll at irregular intervals: sometimes twice within a file, sometimes after several rotations.
            if i % 37 == 0 or i % 301 < 3:
                r.poll()
        r.poll()
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert r.lines == expected(0, 3000)
    assert NoticeKind.ROTATED in r.kinds()
    assert r.gaps == []


def test_delete_and_recreate(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(numbered(0, 5))
    r = Reader(log)
    assert r.poll() == expected(0, 5)
    append(log, numbered(5, 8))
    log.unlink()  # deleted with unread lines: the open descriptor still reads them
    log.write_bytes(numbered(8, 11))
    assert r.poll() == expected(5, 11)
    log.unlink()
    assert r.poll() == []
    assert NoticeKind.DELETED in r.kinds()
    log.write_bytes(numbered(11, 13))
    assert r.poll() == expected(11, 13)
    assert r.gaps == []


def test_directory_removed_and_recreated(tmp_path: Path) -> None:
    d = tmp_path / "logs"
    d.mkdir()
    log = d / "app.log"
    log.write_bytes(numbered(0, 3))
    r = Reader(log)
    assert r.poll() == expected(0, 3)
    shutil.rmtree(d)
    assert r.poll() == []
    d.mkdir()
    log.write_bytes(numbered(3, 6))
    assert r.poll() == expected(3, 6)


def test_file_that_appears_after_start_is_read_from_its_beginning(tmp_path: Path) -> None:
    log = tmp_path / "later.log"
    r = Reader(log, start_at="end")
    assert r.poll() == []
    assert r.poll() == []
    assert r.kinds() == [NoticeKind.ABSENT]  # said once
    log.write_bytes(numbered(0, 4))
    assert r.poll() == expected(0, 4)
    assert NoticeKind.APPEARED in r.kinds()


def test_glob_files_appearing_later(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_bytes(b"a old\n")
    r = Reader(tmp_path / "*.log", start_at="end")
    assert r.poll() == []
    append(tmp_path / "a.log", b"a new\n")
    (tmp_path / "b.log").write_bytes(b"b one\n")
    (tmp_path / "b.txt").write_bytes(b"not matched\n")
    assert sorted(r.poll()) == [b"a new", b"b one"]
    assert set(r.checkpoints) == {str(tmp_path / "a.log"), str(tmp_path / "b.log")}


def test_five_megabyte_line(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    big = b"x" * (5 << 20)
    log.write_bytes(b"before\n" + big[: 3 << 20])
    r = Reader(log, max_line_bytes=8 << 20)
    assert r.poll() == [b"before"]
    append(log, big[3 << 20 :] + b"\nafter\n")
    assert r.poll() == [big, b"after"]
    # With the default maximum the line is cut, and the next line is still intact.
    log2 = tmp_path / "cut.log"
    log2.write_bytes(b"before\n" + big + b"\nafter\n")
    r2 = Reader(log2)
    lines = r2.poll()
    assert lines[0] == b"before" and lines[-1] == b"after"
    assert len(lines) == 3 and len(lines[1]) == 1 << 20


def test_copytruncate_detected_even_when_regrown_past_the_offset(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(numbered(0, 10))
    r = Reader(log)
    assert r.poll() == expected(0, 10)
    append(log, numbered(10, 12))  # written, not yet read, when the copy is taken
    shutil.copyfile(log, tmp_path / "app.log.1")
    with log.open("r+b") as f:
        f.truncate(0)
    append(log, numbered(12, 40))  # regrows past the old offset
    assert os.path.getsize(log) > len(numbered(0, 12))
    assert r.poll() == expected(10, 40)
    assert NoticeKind.TRUNCATED in r.kinds()
    assert r.gaps == []


def _rotate(log: Path, keep: int = 5) -> None:
    """Rename rotation the logrotate way: .N-1 → .N … .1 → .2, live → .1."""
    for i in range(keep - 1, 0, -1):
        for suffix in ("", ".gz"):
            src = log.with_name(f"{log.name}.{i}{suffix}")
            if src.exists():
                src.rename(log.with_name(f"{log.name}.{i + 1}{suffix}"))
    log.rename(log.with_name(log.name + ".1"))


def test_restart_catches_up_through_rotations_while_stopped(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(numbered(0, 5))
    r = Reader(log)
    assert r.poll() == expected(0, 5)
    r.follower.close()
    # While stopped: more lines, two rotations; the file we were in is gzip-compressed.
    append(log, numbered(5, 8))
    _rotate(log)
    log.write_bytes(numbered(8, 12))
    _rotate(log)
    log.write_bytes(numbered(12, 15))
    two = tmp_path / "app.log.2"
    with gzip.open(str(two) + ".gz", "wb") as g:
        g.write(two.read_bytes())
    two.unlink()
    r2 = r.restart()
    assert r2.poll() == expected(5, 15)
    assert r2.gaps == []
    assert NoticeKind.CATCH_UP in r2.kinds()
    # Crash in the middle of the catch-up (a checkpoint inside a backup) resumes there too.
    append(log, numbered(15, 17))
    r3 = r2.restart()
    assert r3.poll() == expected(15, 17)


def test_checkpoint_inside_a_backup_resumes_in_that_backup(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(numbered(0, 5))
    r = Reader(log)
    r.poll()
    r.follower.close()
    append(log, numbered(5, 20))
    _rotate(log)
    log.write_bytes(numbered(20, 25))
    # Catch up in small blocks and "crash" after each chunk: every restart resumes exactly there.
    cfg = SourceConfig(path=str(log))
    checkpoint = r.checkpoints[str(log)]
    seen: list[bytes] = []
    for _ in range(100):
        follower = Follower(cfg, {str(log): checkpoint}, block_size=100)
        chunk = next((e for e in follower.poll() if isinstance(e, Chunk) and e.data), None)
        follower.close()
        if chunk is None:
            break
        seen.extend(chunk.data.splitlines())
        checkpoint = chunk.checkpoint
    assert seen == expected(5, 25)


def test_file_deleted_while_stopped_is_reported_as_a_gap(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(numbered(0, 5))
    r = Reader(log)
    r.poll()
    r.follower.close()
    append(log, numbered(5, 8))  # never read: lost with the file
    _rotate(log)
    (tmp_path / "app.log.1").unlink()
    log.write_bytes(numbered(8, 10))
    r2 = r.restart()
    assert r2.poll() == expected(8, 10)
    assert len(r2.gaps) == 1
    assert r2.gaps[0].lost_bytes is None  # unknown, and said so
    assert r2.restart().poll() == []  # reported once: the checkpoint moved on


# -- the model test ---------------------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

OPS = ("append", "partial", "rotate", "copytruncate", "truncate", "recreate", "restart")


class World:
    """A writer, a follower that can be stopped, and what both have done."""

    def __init__(self, d: Path) -> None:
        self.log = d / "app.log"
        self.log.write_bytes(b"")
        self.written: list[bytes] = []
        self.reader = Reader(self.log)
        self.reader.poll()
        self.running = True
        self.deleted_while_stopped = False
        self.stop_dirty = False  # a destructive op already happened while stopped

    def line(self) -> bytes:
        text = b"L%06d %s" % (len(self.written), b"x" * (len(self.written) % 7))
        self.written.append(text)
        return text + b"\n"

    def poll(self) -> None:
        if self.running:
            self.reader.poll()

    def do(self, op: str, n: int) -> None:
        if not self.running and op in ("copytruncate", "truncate", "recreate", "rotate"):
            cp = self.reader.checkpoints.get(str(self.log))
            live = os.stat(self.log)
            intact = cp is not None and cp.offset > 0 and (cp.dev, cp.inode) == (live.st_dev, live.st_ino)
            if self.stop_dirty or op == "truncate" or (op in ("copytruncate", "recreate") and not intact):
                op = "append"  # see the test's docstring: these losses cannot be seen by anyone
        if op == "append":
            append(self.log, b"".join(self.line() for _ in range(n)))
        elif op == "partial":
            whole = self.line()
            append(self.log, whole[: n % len(whole)])
            self.poll()
            append(self.log, whole[n % len(whole) :])
        elif op == "rotate":
            _rotate(self.log, keep=1000)
            self.log.write_bytes(b"")
            self.stop_dirty = not self.running
        elif op == "copytruncate":
            for i in range(999, 0, -1):
                src = self.log.with_name(f"app.log.{i}")
                if src.exists():
                    src.rename(self.log.with_name(f"app.log.{i + 1}"))
            shutil.copyfile(self.log, self.log.with_name("app.log.1"))
            with self.log.open("r+b") as f:
                f.truncate(0)
            self.stop_dirty = not self.running
        elif op == "truncate":
            with self.log.open("r+b") as f:
                f.truncate(0)
        elif op == "recreate":
            self.log.unlink()
            self.log.write_bytes(b"")
            if not self.running:
                self.deleted_while_stopped = self.stop_dirty = True
        elif op == "restart":
            if self.running:
                self.reader.follower.close()
                self.running, self.stop_dirty = False, False
            else:
                self.reader = self.reader.restart()
                self.running = True
        self.poll()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(OPS), st.integers(1, 6)), max_size=25))
def test_model_every_line_once_in_order_or_a_gap(ops: list[tuple[str, int]]) -> None:
    """Random writer and follower histories: lines read = lines written, in order, none twice.

    While the follower is stopped, only losses that leave a trace are made: the checkpointed file
    deleted (→ a Gap). Some histories leave no trace for any reader, so the model does not make
    them: a file truncated, or created and deleted, entirely while nobody watched; a file replaced
    while stopped at offset 0 by one the filesystem gave the same inode number.
    """
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        w = World(Path(d))
        for op, n in ops:
            w.do(op, n)
        if not w.running:
            w.do("restart", 1)
        w.reader.poll()
        read = w.reader.lines
        assert len(read) == len(set(read)), "a line was read twice"
        positions = [int(line[1:7]) for line in read]
        assert positions == sorted(positions), "lines out of order"
        assert all(w.written[p] == line for p, line in zip(positions, read, strict=True))
        if not w.deleted_while_stopped:
            assert read == w.written
            assert w.reader.gaps == []
        elif read != w.written:
            assert w.reader.gaps, "lines were lost without a log-gap"


# -- inotify, with real timing ----------------------------------------------------------------------

import asyncio  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

from snapwatch.tail.watch import Quiet  # noqa: E402


def test_inotify_wakes_up_fast_follows_rotation_and_idles_without_cpu(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")

    async def main() -> tuple[list[float], float, int]:
        follower = Follower(SourceConfig(path=str(log), start_at="beginning"))
        got: asyncio.Queue[bytes | None] = asyncio.Queue()

        async def consume() -> None:
            async for event in follower.events(flush_after=0.2, recheck=30):
                if isinstance(event, Chunk):
                    for line in event.data.splitlines():
                        got.put_nowait(line)
                elif isinstance(event, Quiet):
                    got.put_nowait(None)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.2)  # the watch is set up
        handler = logging.handlers.RotatingFileHandler(log, maxBytes=2000, backupCount=50)
        handler.setFormatter(logging.Formatter("%(message)s"))
        latencies = []
        quiet = 0
        try:
            for i in range(120):
                start = time.perf_counter()
                handler.emit(logging.makeLogRecord({"msg": f"line {i:06d} some padding to make it longer"}))
                line = await asyncio.wait_for(got.get(), 5)
                while line is None:  # a Quiet between writes
                    quiet += 1
                    line = await asyncio.wait_for(got.get(), 5)
                latencies.append(time.perf_counter() - start)
                assert line == b"line %06d some padding to make it longer" % i
            assert await asyncio.wait_for(got.get(), 5) is None  # Quiet after flush_after
            cpu0 = time.process_time()
            await asyncio.sleep(1.0)
            idle_cpu = time.process_time() - cpu0
        finally:
            handler.close()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return latencies, idle_cpu, quiet

    latencies, idle_cpu, _ = asyncio.run(main())
    assert len(list(tmp_path.glob("app.log.*"))) >= 2  # it did rotate, more than once
    p50 = statistics.median(latencies)
    p99 = sorted(latencies)[int(len(latencies) * 0.99) - 1]
    print(f"wake-up latency p50={p50 * 1000:.1f} ms p99={p99 * 1000:.1f} ms; idle CPU {idle_cpu * 1000:.1f} ms/s")
    assert p50 < 0.1 and p99 < 0.5
    assert idle_cpu < 0.05


def test_directory_recreated_while_watching(tmp_path: Path) -> None:
    d = tmp_path / "logs"
    d.mkdir()
    log = d / "app.log"

    async def main() -> list[bytes]:
        follower = Follower(SourceConfig(path=str(log), start_at="beginning"))
        lines: list[bytes] = []
        agen = follower.events(flush_after=10, recheck=0.2)
        try:
            async def until(n: int) -> None:
                async for event in agen:
                    if isinstance(event, Chunk):
                        lines.extend(event.data.splitlines())
                        if len(lines) >= n:
                            return

            log.write_bytes(b"one\n")
            await asyncio.wait_for(until(1), 5)
            shutil.rmtree(d)
            await asyncio.sleep(0.3)
            d.mkdir()
            log.write_bytes(b"two\n")
            await asyncio.wait_for(until(2), 5)
        finally:
            await agen.aclose()
        return lines

    assert asyncio.run(main()) == [b"one", b"two"]


def test_a_copytruncate_regrown_alike_near_the_offset_is_told_by_the_file_head(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    same = b"12:00:01 INFO the same line in a busy second\n"
    log.write_bytes(b"12:00:01 INFO started by pid 41\n" + same * 40)
    r = Reader(log)
    assert len(r.poll()) == 41
    shutil.copyfile(log, tmp_path / "app.log.1")
    os.truncate(log, 0)
    with log.open("ab") as f:  # regrown past the old offset before the next look; alike near the offset
        f.write(b"12:00:01 INFO started by pid 42\n" + same * 50)
    assert r.poll() == [b"12:00:01 INFO started by pid 42", *[same.rstrip(b"\n")] * 50]
    assert NoticeKind.TRUNCATED in r.kinds() and r.gaps == []


def test_an_old_checkpoint_fingerprint_is_still_recognised(tmp_path: Path) -> None:
    import hashlib
    from dataclasses import replace

    log = tmp_path / "app.log"
    log.write_bytes(numbered(0, 30))
    r = Reader(log)
    r.poll()
    cp = r.checkpoints[str(log)]
    old = hashlib.sha256(log.read_bytes()[cp.offset - 64 : cp.offset]).hexdigest()  # 64 bytes: before version 2
    r.checkpoints[str(log)] = replace(cp, fingerprint=old)
    append(log, numbered(30, 32))
    r2 = r.restart()
    assert r2.poll() == expected(30, 32) and r2.gaps == []  # an upgrade neither re-reads nor loses


def test_a_file_that_appears_and_rotates_before_its_first_look_is_read_from_its_backup(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    (tmp_path / "app.log.3").write_bytes(b"long before\n")  # there when the path was absent: not ours to read
    r = Reader(log)
    assert r.poll() == []
    log.write_bytes(numbered(0, 5))
    log.rename(tmp_path / "app.log.1")
    log.write_bytes(numbered(5, 8))
    assert r.poll() == expected(0, 8)
