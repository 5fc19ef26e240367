"""Blocks whose lines interleave (several processes on one file), process ids in the prefix, requests that are
never answered, restarts with a new token, v2 as backends log it, and records that cannot be read."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from snapwatch.config import SourceConfig, validated
from snapwatch.ingest import blocks
from snapwatch.ingest.records import Assembler
from snapwatch.ingest.tokens import Defect, fingerprint
from snapwatch.model import Exchange, Placement
from tests.helpers.tokens import make_canvas_token

T0 = datetime(2025, 12, 3, 23, 35, 17, tzinfo=UTC)
SEP = "=" * 100
TOKEN_A, TOKEN_B = make_canvas_token(seed="il-a"), make_canvas_token(seed="il-b")
PIXEL = "5bf81ee1-15b1-4dc1-b636-d7dae49b950e"


def prefix(at: datetime, pid: str = "") -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") + " - " + (f"{pid} - " if pid else "") + "INFO - "


def request(at: datetime, event: str, token: str, pid: str = "") -> list[str]:
    """One request block: one string per logging call (the payload is one call of several lines)."""
    p = prefix(at, pid)
    url = f"https://tr.snapchat.com/v3/{PIXEL}/events?access_token={token}"
    return [p + SEP, f"{p}[OUT] OUTGOING REQUEST - {event} Event (v3)", f"{p}URL: {url}", f"{p}Method: POST",
            f"{p}Payload:", p + json.dumps({"data": [{"event_name": event}]}, indent=2), p + SEP]


def response(at: datetime, event: str, status: int, pid: str = "") -> list[str]:
    p = prefix(at, pid)
    body = json.dumps({"status": "VALID" if status == 200 else "UNKNOWN"}, indent=2)
    return [p + SEP, f"{p}[IN] INCOMING RESPONSE - {event} Event", f"{p}Status Code: {status}", f"{p}Body: {body}",
            p + SEP, p]


def interleave(*blocks: list[str]) -> list[str]:
    """The logging calls of several processes, one call of each in turn (each call's lines stay together)."""
    out: list[str] = []
    for i in range(max(map(len, blocks))):
        out += [b[i] for b in blocks if i < len(b)]
    return out


def parse(calls: list[str], **config: object) -> tuple[list[Exchange], Assembler]:
    asm = Assembler(validated(SourceConfig, {"path": "x.log", "timezone": "UTC", **config}), "x.log")
    data = ("\n".join(calls) + "\n").encode()
    # line by line, as a follower may hand them over, so that no block is read in one go by chance
    out: list[Exchange] = []
    for line in data.splitlines(keepends=True):
        out += asm.feed(line)
    return out + asm.flush(), asm


def statuses(exchanges: list[Exchange]) -> list[tuple[str, int | None, str | None]]:
    return sorted((e.response.event, e.status, e.request.token_fp if e.request else None) for e in exchanges)


def test_interleaved_calls_of_two_processes_lose_no_status_and_are_noticed() -> None:
    calls = interleave(request(T0, "ADD_CART", TOKEN_A), request(T0, "VIEW_CONTENT", TOKEN_A))
    calls += interleave(response(T0, "ADD_CART", 200), response(T0, "VIEW_CONTENT", 401))
    got, asm = parse(calls)
    assert sorted(e.status for e in got) == [200, 401]
    assert asm.by_status == {"200": 1, "401": 1}
    assert asm.stats.responses_without_status == asm.stats.requests_without_url == 0
    assert all(e.request is not None and e.request.token_fp == fingerprint(TOKEN_A) for e in got)
    assert asm.interleaved > 0  # several processes, no process id: said once as log-interleaved


def test_a_status_line_that_comes_late_still_finds_its_response() -> None:
    # finding 1 of the real-client runs: another process's line between the header and the status
    a, b = response(T0, "ADD_CART", 200), response(T0, "PURCHASE", 200)
    calls = [*request(T0, "ADD_CART", TOKEN_A), *request(T0, "PURCHASE", TOKEN_A),
             a[0], a[1], b[0], b[1], a[2], b[2], b[3], a[3], a[4], b[4]]
    got, asm = parse(calls)
    assert [e.status for e in got] == [200, 200]
    assert asm.stats.responses_without_status == 0


def test_a_url_line_after_other_lines_still_gives_its_request_a_token() -> None:
    # finding 2: the line after [OUT] is not its URL
    a, b = request(T0, "ADD_CART", TOKEN_A), request(T0, "PURCHASE", TOKEN_A)
    calls = [a[0], a[1], b[0], b[1], b[2], a[2], *a[3:], *b[3:], *response(T0, "ADD_CART", 200),
             *response(T0, "PURCHASE", 200)]
    got, asm = parse(calls)
    assert [e.request.token_fp if e.request else None for e in got] == [fingerprint(TOKEN_A)] * 2
    assert asm.stats.requests_without_url == 0


def test_a_request_whose_url_never_comes_is_counted() -> None:
    calls = request(T0, "PURCHASE", TOKEN_A)
    del calls[2]
    got, asm = parse([*calls, *response(T0, "PURCHASE", 200)])
    assert [e.status for e in got] == [200] and got[0].request is not None and got[0].request.token_fp is None
    assert asm.stats.requests_without_url == 1


@pytest.mark.parametrize("pid", [("[101]", "[202]"), ("pid=101", "pid=202")])
def test_with_process_ids_each_response_pairs_within_its_process(pid: tuple[str, str]) -> None:
    one, two = pid
    # Process one sends token A and is answered 401 after process two's token B got its 200: by order alone
    # the 200 would be credited to A.
    calls = interleave(request(T0, "PURCHASE", TOKEN_A, one), request(T0, "PURCHASE", TOKEN_B, two))
    calls += response(T0 + timedelta(seconds=1), "PURCHASE", 200, two)
    calls += response(T0 + timedelta(seconds=1), "PURCHASE", 401, one)
    got, asm = parse(calls)
    assert statuses(got) == sorted([("PURCHASE", 200, fingerprint(TOKEN_B)), ("PURCHASE", 401, fingerprint(TOKEN_A))])
    assert asm.interleaved == 0  # the format names the process: nothing to warn about
    assert asm.stats.unrecognized_lines == 0


def test_a_process_id_format_is_read_at_full_speed_and_an_unknown_format_is_counted() -> None:
    calls = [*request(T0, "PURCHASE", TOKEN_A, "[4242]"), *response(T0, "PURCHASE", 200, "[4242]")]
    got, asm = parse(["\n".join(calls)])  # one feed: the buffer scan reads each block in one go
    assert [e.status for e in got] == [200] and asm.stats.unrecognized_lines == 0
    unknown = [line.replace(" - INFO - ", " - app.capi - INFO - ") for line in calls]
    got, asm = parse(unknown)
    assert got == [] and asm.stats.unrecognized_lines == 2  # the two header lines: not silently empty


def test_a_request_never_answered_is_not_paired_with_a_later_response() -> None:
    later = T0 + timedelta(minutes=5)
    calls = [*request(T0, "PURCHASE", TOKEN_A), *request(later, "PURCHASE", TOKEN_B),
             *response(later, "PURCHASE", 200)]
    got, asm = parse(calls, pairing_timeout="2m")
    assert statuses(got) == [("PURCHASE", 200, fingerprint(TOKEN_B))]
    assert asm.stats.unanswered_requests == 1 and asm.stats.unpaired_responses == 0


def test_requests_still_waiting_at_the_end_are_unanswered() -> None:
    got, asm = parse([*request(T0, "PURCHASE", TOKEN_A), *request(T0, "PURCHASE", TOKEN_A),
                      *response(T0, "PURCHASE", 200)])
    assert len(got) == 1 and asm.stats.unanswered_requests == 1


def test_after_a_restart_with_a_new_token_the_old_requests_left_waiting_are_not_credited() -> None:
    # finding 3: the old process timed out on two requests and was restarted with token B
    old = [line for i in range(3) for line in request(T0, "PURCHASE", TOKEN_A)]
    answered = response(T0, "PURCHASE", 200)
    restart = T0 + timedelta(seconds=4)
    new = [line for _ in range(2) for line in request(restart, "PURCHASE", TOKEN_B)]
    got, asm = parse([*old, *answered, *new, *response(restart, "PURCHASE", 401),
                      *response(restart, "PURCHASE", 401)])
    assert statuses(got) == [("PURCHASE", 200, fingerprint(TOKEN_A)),
                             ("PURCHASE", 401, fingerprint(TOKEN_B)), ("PURCHASE", 401, fingerprint(TOKEN_B))]
    assert asm.stats.unanswered_requests == 2


def test_two_tokens_in_use_together_stay_paired_by_order() -> None:
    # token A and B both sent within a second (two workers, one not restarted yet): no restart to see
    answered = T0 + timedelta(seconds=3)
    calls = [*request(T0, "PURCHASE", TOKEN_A), *request(T0, "PURCHASE", TOKEN_B),
             *response(answered, "PURCHASE", 401), *response(answered, "PURCHASE", 200)]
    got, _ = parse(calls)
    assert [(e.status, e.request.token_fp if e.request else None) for e in got] == [
        (401, fingerprint(TOKEN_A)), (200, fingerprint(TOKEN_B))]


def test_a_response_whose_parts_never_come_is_counted_once_newer_blocks_show_they_will_not() -> None:
    head = response(T0, "PURCHASE", 200)[:2]
    got, _ = parse([*request(T0, "PURCHASE", TOKEN_A), *head])
    assert [e.status for e in got] == [None]  # the end of the input completes it as it is
    asm2 = Assembler(SourceConfig(path="x.log", timezone="UTC"), "x.log")
    first = asm2.feed(("\n".join([*request(T0, "PURCHASE", TOKEN_A), *head]) + "\n").encode())
    soon = asm2.feed(("\n".join(request(T0 + timedelta(seconds=1), "ADD_CART", TOKEN_A)) + "\n").encode())
    late = asm2.feed(("\n".join(request(T0 + timedelta(seconds=3), "ADD_CART", TOKEN_A)) + "\n").encode())
    assert (first, soon, [e.status for e in late]) == ([], [], [None])
    assert asm2.stats.responses_without_status == 1 and asm2.held_bytes == 0


def test_v2_pixel_from_the_payload_and_bearer_is_the_header_form() -> None:
    p = prefix(T0)
    payload = json.dumps({"pixel_id": PIXEL, "event_type": "PURCHASE"}, indent=2)
    head = [p + SEP, f"{p}[OUT] OUTGOING REQUEST - PURCHASE Event (v2)", f"{p}URL: https://tr.snapchat.com/v2/conversion",
            f"{p}Method: POST"]
    for calls in ([*head, f"{p}Payload:", p + payload, p + SEP],  # read in one go
                  [*head, f"{p}Authorization: Bearer {TOKEN_A}", f"{p}Payload:", p + payload, p + SEP]):
        got, asm = parse(["\n".join(calls + response(T0, "PURCHASE", 200))])
        [ex] = got
        assert ex.request is not None and ex.request.pixel == PIXEL
        if "Authorization" in calls[4]:
            assert ex.request.placement is Placement.HEADER and ex.request.token_fp == fingerprint(TOKEN_A)
            assert Defect.BEARER_PREFIX not in asm.token_reports[fingerprint(TOKEN_A)].defects
        else:
            assert ex.request.placement is Placement.UNKNOWN and asm.tokens == {}


def test_a_record_whose_reading_fails_is_counted_and_the_rest_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    real = blocks.redact

    def breaks_on_marker(text: str) -> str:
        if "breaks-the-reader" in text:
            raise RuntimeError("a reader bug")
        return real(text)

    monkeypatch.setattr(blocks, "redact", breaks_on_marker)
    p = prefix(T0)
    broken = [p + "[IN] INCOMING RESPONSE - PURCHASE Event", p + "Status Code: 500", p + "Body: breaks-the-reader"]
    calls = [*request(T0, "PURCHASE", TOKEN_A), *broken, *request(T0, "PURCHASE", TOKEN_A),
             *response(T0, "PURCHASE", 401)]
    got, asm = parse(["\n".join(calls)])
    assert [e.status for e in got] == [401] and asm.stats.poison_records == 1
    assert asm.by_status == {"401": 1}  # what was not emitted is not counted either
