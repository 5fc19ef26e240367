"""A damaged gzip backup (cut short, or a bad CRC) is read up to the damage; the rest is a log-gap naming the file."""

from __future__ import annotations

import gzip
import json
import os
import re
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from snapwatch.synthetic import Call
from tests.helpers.cli import snapwatch_process
from tests.helpers.clock import seconds
from tests.helpers.daemon import write_config
from tests.helpers.peers import Backend
from tests.helpers.process import READY, DaemonProcess, status_json
from tests.helpers.tokens import make_canvas_token
from tests.helpers.wait import wait_until

TOKEN = make_canvas_token(seed="gzip")
T0 = datetime(2025, 12, 6, 9, 0, 0, tzinfo=UTC)
STATUS = re.compile(rb"^.* - INFO - Status Code: (\d{3})$", re.M)


def _readable(damaged: bytes) -> bytes:
    """What a plain zlib stream gives of ``damaged`` before it fails (independent of snapwatch's reader)."""
    d = zlib.decompressobj(31)
    out = b""
    for i in range(0, len(damaged), 512):
        try:
            out += d.decompress(damaged[i : i + 512])
        except zlib.error:
            break
    return out


def _complete(data: bytes) -> dict[str, int]:
    """Responses whose body closes within ``data``, by status (a body is one JSON object ending in ``}``)."""
    counts: dict[str, int] = {}
    for m in STATUS.finditer(data):
        if data.find(b"\n}", m.end()) >= 0:
            counts[m.group(1).decode()] = counts.get(m.group(1).decode(), 0) + 1
    return counts


def _damage(plain: bytes, how: str) -> tuple[bytes, bytes]:
    """The gzip of ``plain`` damaged ``how``, and the part of ``plain`` readable before the damage."""
    packed = gzip.compress(plain)
    if how == "truncated":
        damaged = packed[: len(packed) * 3 // 5]
        return damaged, _readable(damaged)
    damaged = packed[:-8] + bytes(b ^ 0xFF for b in packed[-8:-4]) + packed[-4:]  # the CRC, flipped
    return damaged, plain


def _log(path: Path, n: int, first: int = 0, statuses: tuple[int, ...] = (200, 401)) -> None:
    backend = Backend(path, name=f"snapwatch.tests.faults.gzip.{path.name}")
    backend.write([Call("PURCHASE", statuses[i % len(statuses)], TOKEN) for i in range(n)], seconds(T0, n, first))
    backend.close()


@pytest.mark.parametrize("how", ["truncated", "bad-crc"])
def test_scan_reads_a_damaged_gzip_up_to_the_damage_and_names_it(tmp_path: Path, how: str) -> None:
    plain = tmp_path / "plain.log"
    _log(plain, 400)
    damaged, readable = _damage(plain.read_bytes(), how)
    backup = tmp_path / "capi.log.2.gz"
    backup.write_bytes(damaged)
    live = tmp_path / "capi.log"
    _log(live, 6, first=1000)
    done = snapwatch_process("scan", "--json", str(backup), str(live))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    report = json.loads(done.stdout)
    expected = _complete(readable)
    for status, n in _complete(live.read_bytes()).items():
        expected[status] = expected.get(status, 0) + n
    assert report["responses"]["by_status"] == expected
    assert 0 < sum(expected.values()) < 406 if how == "truncated" else sum(expected.values()) == 406
    (gap,) = report["log_gaps"]
    assert gap["path"] == str(backup) and gap["code"] == "log-gap"
    text = snapwatch_process("scan", str(backup), str(live))
    assert text.returncode == 0 and f"Log gap: {backup}" in text.stdout, text.stdout + text.stderr


@pytest.mark.parametrize("how", ["truncated", "bad-crc"])
def test_the_daemon_counts_what_a_damaged_backup_holds_before_the_damage(tmp_path: Path, how: str) -> None:
    log = tmp_path / "capi.log"
    _log(log, 20)
    config = write_config(tmp_path / "config.yaml", [log], tmp_path / "state", timezone="UTC")
    first = DaemonProcess(config)
    try:
        first.wait_for(READY, 30)
        wait_until(lambda: _total(config) == 20, "the first twenty responses")
        assert first.terminate()[0] == 0
        sources = status_json(config)["sources"]
        assert isinstance(sources, list)
        offset = sources[0]["offset"]  # where the checkpoint stands
    finally:
        if first.proc.poll() is None:
            first.kill()
    # While snapwatch is down: many more lines; then the file is rotated and compressed, and the compressed
    # backup is damaged (a disk error, a copy cut short).
    _log(log, 400, first=20)
    whole = log.read_bytes()
    damaged, readable = _damage(whole, how)
    (tmp_path / "capi.log.1.gz").write_bytes(damaged)
    os.unlink(log)
    _log(log, 5, first=1000)
    expected = 20 + sum(_complete(readable[offset:]).values()) + 5
    second = DaemonProcess(config)
    try:
        second.wait_for(READY, 30)
        wait_until(lambda: _total(config) == expected, f"{expected} responses: the readable part counted too")
        code, _ = second.terminate()
    finally:
        if second.proc.poll() is None:
            second.kill()
    assert code == 0, second.output()
    gaps = status_json(config)["log_gaps"]
    assert isinstance(gaps, list) and len(gaps) == 1, gaps
    assert "capi.log.1.gz" in gaps[0]["reason"]
    assert _total(config) == expected
    if how == "truncated":
        assert expected < 425


def _total(config: Path) -> int:
    sources = status_json(config)["sources"]
    assert isinstance(sources, list)
    return sum(n for s in sources for n in s["responses"].values())
