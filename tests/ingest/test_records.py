"""The assembler on golden logs (tests/data/parse/*.log with *.expected.json beside them), body fields,
configuration errors, and the promise that no token text leaves the parser."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from snapwatch.config import FieldError, SourceConfig
from snapwatch.errors import ConfigError
from snapwatch.ingest.body import body_fields
from snapwatch.ingest.lines import LineSplitter
from snapwatch.ingest.records import Assembler
from snapwatch.ingest.stamps import Stamps
from snapwatch.ingest.tokens import fingerprint
from snapwatch.model import Exchange, ParseStats
from tests.helpers import paths
from tests.helpers.tokens import assert_no_secret

DATA = paths.DATA / "parse"
CASES = sorted(p for p in DATA.iterdir() if not p.name.endswith(".expected.json"))


def parse_file(path: Path, config: SourceConfig, chunk: int) -> tuple[list[Exchange], Assembler]:
    splitter = LineSplitter(config.max_line_bytes)
    asm = Assembler(config, str(path))
    got: list[Exchange] = []
    data = path.read_bytes()
    for i in range(0, len(data), chunk):
        got += asm.feed(splitter.push(data[i : i + chunk]))
    got += asm.feed(splitter.flush())
    got += asm.flush()
    asm.stats.long_lines = splitter.long_lines
    return got, asm


def _expected(path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((DATA / (path.stem + ".expected.json")).read_text())
    return result


@pytest.mark.parametrize("chunk", [1 << 20, 7, 1])
@pytest.mark.parametrize("path", CASES, ids=[p.name for p in CASES])
def test_golden_log(path: Path, chunk: int) -> None:
    exp = _expected(path)
    config = SourceConfig(path=str(path), **exp["config"])
    got, asm = parse_file(path, config, chunk)
    assert len(got) == exp["exchanges"]
    by_status: dict[str, int] = {}
    for e in got:
        key = "none" if e.status is None else str(e.status)
        by_status[key] = by_status.get(key, 0) + 1
    assert by_status == exp["by_status"] == asm.by_status
    assert [e.response.event for e in got] == exp["events"]
    assert asm.stats.unpaired_responses == exp["unpaired"]
    assert [None if e.request is None else e.request.placement.value for e in got] == exp["placements"]
    assert [None if e.request is None else e.request.api.value for e in got] == exp["apis"]
    assert sorted(asm.tokens) == exp["fingerprints"]
    assert asm.tokens_in_log is exp["tokens_in_log"]
    assert all(e.source == str(path) for e in got)
    for key, want in exp.get("bodies", {}).items():
        assert got[int(key)].response.body == want
    for e in got:  # bodies are kept for failures only
        if e.ok:
            assert e.response.body == ""
    if "at" in exp:
        assert [e.at.isoformat() for e in got] == exp["at"]
    if "request_at" in exp:
        assert [e.request.at.isoformat() for e in got if e.request] == exp["request_at"]
    if "request_fps" in exp:
        assert [e.request.token_fp if e.request else None for e in got] == exp["request_fps"]
    if "pixels" in exp:
        assert [e.request.pixel if e.request else None for e in got] == exp["pixels"]
    stats = asm.stats.to_json()
    for name, want in exp["stats"].items():
        assert stats[name] == want, name
    for name in ("invalid_utf8", "nul_bytes", "truncated_bodies", "responses_without_status", "bad_timestamps"):
        assert stats[name] == exp["stats"].get(name, 0), name


def test_no_token_text_in_anything_the_parser_returns() -> None:
    secrets: list[str] = []
    for path in CASES:
        text = path.read_bytes().decode("utf-8", "replace")
        for marker in ("access_token=", "Bearer "):
            for piece in text.split(marker)[1:]:
                token = piece.split()[0].split("&")[0].strip('"')
                if len(token) > 40:
                    secrets += [token, token.replace(".", "%2E"), token[6:-4]]
    assert secrets, "the fixtures hold tokens"
    for path in CASES:
        exp = _expected(path)
        got, asm = parse_file(path, SourceConfig(path=str(path), **exp["config"]), 1 << 20)
        shown = " ".join([repr(got), str(got), repr(asm.stats), str(asm.stats.to_json()), repr(asm.tokens),
                          repr(asm.by_status), repr(asm.requests_by_api), repr(vars(asm).keys())]
                         + [repr(body_fields(e.response.body)) for e in got])
        for secret in secrets:
            assert secret not in shown


def test_response_held_until_its_body_can_no_longer_continue() -> None:
    asm = Assembler(SourceConfig(path="x", timezone="UTC"), "x")
    head = (b"2025-12-03 23:35:17 - INFO - [IN] INCOMING RESPONSE - PURCHASE Event\n"
            b"2025-12-03 23:35:17 - INFO - Status Code: 401\n")
    assert asm.feed(head) == [] and asm.held_bytes == len(head)
    text = b"2025-12-03 23:35:17 - INFO - Body: Invalid token\n"
    assert asm.feed(text) == [] and asm.held_bytes == len(head) + len(text)  # a text body may continue
    more = b"second line of the body\n"
    assert asm.feed(more) == []
    [done] = asm.feed(b"2025-12-03 23:35:17 - INFO - " + b"=" * 100 + b"\n")
    assert done.response.body == "Invalid token\nsecond line of the body" and asm.held_bytes == 0
    # A JSON body is emitted as soon as it closes, without waiting for the next line.
    asm.feed(head + b"2025-12-03 23:35:17 - INFO - Body: {\n")
    assert asm.held_bytes > 0
    [closed] = asm.feed(b'  "status": "INVALID"\n}\n')
    assert closed.status == 401 and asm.held_bytes == 0
    assert asm.stats.unpaired_responses == 2


def test_flush_counts_requests_never_answered() -> None:
    asm = Assembler(SourceConfig(path="x", timezone="UTC"), "x")
    asm.feed(b"2025-12-03 23:35:17 - INFO - [OUT] OUTGOING REQUEST - PURCHASE Event (v2)\n")
    assert asm.requests == 1
    assert asm.flush() == [] and asm.stats.unanswered_requests == 1 and asm.stats.unpaired_requests == 0
    assert asm.requests_by_api == {"v2": 1}


def test_local_timezone_gives_aware_times() -> None:
    asm = Assembler(SourceConfig(path="x"), "x")
    [e] = asm.feed(b"2025-06-01 12:00:00 - INFO - [IN] INCOMING RESPONSE - X Event\n"
                   b'2025-06-01 12:00:00 - INFO - Status Code: 200\n2025-06-01 12:00:00 - INFO - Body: {"a": 1}\n')
    assert e.at.tzinfo is not None and e.at.replace(tzinfo=None).isoformat() == "2025-06-01T12:00:00"


def test_bad_configuration_is_a_config_error() -> None:
    # The config refuses these as it is built; a SourceConfig changed past its checks still gets a ConfigError.
    cases = [({"timezone": "Mars/Olympus"}, "time zone"),
             ({"format": "regex", "pattern": r"(?P<ts>\S+)"}, "named groups status"),
             ({"format": "regex", "pattern": r"(?P<ts>"}, "not a valid regular expression")]
    for update, message in cases:
        with pytest.raises(FieldError, match=message):
            SourceConfig(path="x", **update)
        unchecked = SourceConfig(path="x")
        for name, value in update.items():
            object.__setattr__(unchecked, name, value)
        with pytest.raises(ConfigError, match=message):
            Assembler(unchecked, "x")


def test_body_fields() -> None:
    v3 = body_fields('{"status": "INVALID", "reason": "bad", "errors": {"codes": [1001], "error_msgs": ["no price"]}}')
    assert (v3.is_json, v3.status, v3.reason, v3.codes, v3.error_msgs) == (True, "INVALID", "bad", ("1001",),
                                                                          ("no price",))
    v2 = body_fields('{"status": "FAILED", "error_records": [{"reason": "missing", "record_indexes": [0]}, 3]}')
    assert v2.record_reasons == ("missing",)
    wrapper = body_fields('{\n  "status": "UNKNOWN",\n  "text": "Invalid access token"\n}')
    assert wrapper.text == "Invalid access token" and wrapper.status == "UNKNOWN"
    text = body_fields("  Unauthorized\n")
    assert (text.is_json, text.text) == (False, "Unauthorized")
    assert body_fields('{"status": ').is_json is False
    assert body_fields("[1, 2]") == body_fields("[]") and body_fields("[]").is_json
    assert body_fields("").text is None


def test_kept_bodies_never_hold_the_token(canvas_token: str) -> None:
    # A backend's error wrapper quoting the failed URL: the body reaches evidence, alerts and the state file.
    p = "2025-06-01 12:00:00 - INFO - "
    url = f"https://tr.snapchat.com/v3/px/events?access_token={canvas_token}"
    slow_json = f'{{\n  "status": "UNKNOWN",\n  "access_token": "{canvas_token}",\n  "text": "401 for url: {url}"\n}}'
    log = (f"{p}[OUT] OUTGOING REQUEST - A Event (v3)\n{p}URL: {url}\n{p}Payload:\n{{}}\n"
           f"{p}[IN] INCOMING RESPONSE - A Event\n{p}Status Code: 401\n{p}Body: {{\n"
           f'  "status": "UNKNOWN",\n  "text": "400 Client Error for url: {url}"\n}}\n'
           f"{p}[IN] INCOMING RESPONSE - B Event\n{p}Status Code: 400\n{p}Body: {slow_json}\n{p}done\n")
    asm = Assembler(SourceConfig(path="x", timezone="UTC"), "x")
    got = asm.feed(log.encode()) + asm.flush()
    assert [e.status for e in got] == [401, 400]
    for e in got:
        assert_no_secret(e.response.body, canvas_token)
        assert "access_token" in e.response.body and f"token {fingerprint(canvas_token)}" in e.response.body
    # still JSON, reasons still read; the token, seen in the request's URL, is shown as its label
    assert json.loads(got[1].response.body)["access_token"] == f"token {fingerprint(canvas_token)}"
    jsonl = Assembler(SourceConfig(path="x", format="jsonl", timezone="UTC"), "x")
    [line] = jsonl.feed(json.dumps({"ts": 1, "status": 401, "reason": f"denied: {url}"}).encode() + b"\n")
    assert_no_secret(line.response.body, canvas_token)


def test_times_in_the_machines_zone_share_one_zone_object_per_offset() -> None:
    # Times whose tzinfo objects differ compare and hash through their offsets, several times slower: the
    # timeline's per-minute counts would pay for it on every response.
    stamps = Stamps(None, ParseStats())
    first = stamps.time(b"2025-12-03 22:13:20 - INFO - ")
    later = stamps.time(b"2025-12-03 22:14:05 - INFO - ")
    assert first.tzinfo is later.tzinfo is not None
    assert later - first == timedelta(seconds=45)
    assert first == datetime(2025, 12, 3, 22, 13, 20).astimezone()


@pytest.mark.parametrize("zone", ["Europe/Berlin", "Australia/Lord_Howe", "UTC"])
def test_a_minute_read_once_gives_each_second_the_time_a_whole_reading_gives(zone: str) -> None:
    # Each minute's fields and offset are read once and its seconds added; around the changes of summer
    # time (Lord Howe moves by half an hour) every second must still be what datetime() makes of it.
    tz = ZoneInfo(zone)
    stamps = Stamps(tz, ParseStats())
    for start in (datetime(2025, 3, 30, 1, 58), datetime(2025, 10, 26, 1, 58), datetime(2025, 4, 6, 1, 28),
                  datetime(2025, 10, 5, 1, 58)):
        for n in range(0, 300, 7):
            naive = start + timedelta(seconds=n)
            stamp = naive.strftime("%Y-%m-%d %H:%M:%S").encode() + b" - INFO - "
            got = stamps.time(stamp)
            assert (got, got.utcoffset()) == (naive.replace(tzinfo=tz), naive.replace(tzinfo=tz).utcoffset())
    for bad in (b"2025-12-03 22:13:60 - INFO - ", b"2025-13-03 22:13:20 - INFO - ", b"2025-12-03 24:00:00 - INFO - "):
        stamps.time(bad)
    assert stamps.stats.bad_timestamps == 3
