"""The follower against the real logrotate binary: create, copytruncate, compress + delaycompress."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers.files import append
from tests.helpers.follow import Reader, expected, numbered
from tests.helpers.tools import need_tool


@pytest.fixture(autouse=True)
def _logrotate_installed() -> None:
    # Asked before a test opens its writer: a skip must not leave a file open (warnings are errors).
    need_tool("logrotate")


def logrotate(tmp_path: Path, log: Path, options: str) -> None:
    binary = need_tool("logrotate")
    conf = tmp_path / "logrotate.conf"
    conf.write_text(f"{log} {{\n    rotate 4\n    missingok\n    nomail\n    {options}\n}}\n")
    subprocess.run([binary, "-f", "-s", str(tmp_path / "logrotate.state"), str(conf)],
                   check=True, capture_output=True, timeout=30)


def test_create_mode_reads_the_old_file_to_its_end_then_the_new_one(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    r = Reader(log)
    r.poll()
    writer = log.open("ab", buffering=0)  # a writer that keeps its descriptor across the rename
    written = 0
    for cycle in range(4):
        writer.write(numbered(written, written + 20))
        written += 20
        r.poll()
        writer.write(numbered(written, written + 5))  # unread when logrotate renames the file
        written += 5
        logrotate(tmp_path, log, "create 0640")
        writer.write(numbered(written, written + 5))  # still going to the old (renamed) file
        written += 5
        r.poll()
        writer.close()
        writer = log.open("ab", buffering=0)  # the backend reopens (postrotate / SIGHUP)
        writer.write(numbered(written, written + 3))
        written += 3
        if cycle % 2:
            r.poll()
    writer.close()
    r.poll()
    assert r.lines == expected(0, written)
    assert r.gaps == []


def test_copytruncate(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    r = Reader(log)
    r.poll()
    written = 0
    for cycle in range(4):
        append(log, numbered(written, written + 30))
        written += 30
        r.poll()
        append(log, numbered(written, written + 4))  # unread at the copy: found again in the copy
        written += 4
        logrotate(tmp_path, log, "copytruncate")
        # Regrow past the old offset before the follower looks, the hard case for size checks.
        append(log, numbered(written, written + 60 + cycle))
        written += 60 + cycle
        r.poll()
    assert r.lines == expected(0, written)
    assert r.gaps == []


def test_compress_and_delaycompress(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    r = Reader(log)
    written = 0
    for _ in range(5):
        append(log, numbered(written, written + 25))
        written += 25
        r.poll()
        append(log, numbered(written, written + 5))
        written += 5
        logrotate(tmp_path, log, "create\n    compress\n    delaycompress")
        append(log, numbered(written, written + 7))
        written += 7
        r.poll()
    assert (tmp_path / "app.log.2.gz").exists()
    assert r.lines == expected(0, written)


def test_restart_after_rotations_with_compression_while_stopped(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(numbered(0, 10))
    r = Reader(log)
    r.poll()
    r.follower.close()
    # While stopped: the file we were in is rotated and compressed at once, then once more.
    append(log, numbered(10, 15))
    logrotate(tmp_path, log, "create\n    compress")
    append(log, numbered(15, 20))
    logrotate(tmp_path, log, "create\n    compress")
    append(log, numbered(20, 22))
    assert sorted(p.name for p in tmp_path.glob("app.log*")) == ["app.log", "app.log.1.gz", "app.log.2.gz"]
    r2 = r.restart()
    assert r2.poll() == expected(10, 22)
    assert r2.gaps == []
