"""Property tests: generated backend logs, cut anywhere, parse back to exactly what was written;
the buffer-scanning assembler agrees with a plain line-by-line reading of the same format."""

from __future__ import annotations

import base64
import json
import re
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapwatch.config import SourceConfig, validated
from snapwatch.ingest.lines import LineSplitter
from snapwatch.ingest.records import Assembler
from snapwatch.ingest.tokens import fingerprint, kind_of, normalize
from snapwatch.model import Api, Exchange, Placement, TokenKind
from snapwatch.redact import redact
from tests.helpers.tokens import jwt_segment

SEP = "=" * 100
T0 = datetime(2025, 12, 3, 23, 35, 17, tzinfo=UTC)
EVENTS = ["PAGE_VIEW", "PURCHASE", "ADD_CART", "Sign Up"]
STATUSES = [200, 200, 200, 401, 403, 429, 500, 503, 400]


def fake_jwt(n: int) -> str:
    header = {"alg": "HS256", "kid": "CanvasS2SHMACProd", "typ": "JWT"}
    claims = {"aud": "canvas-canvasapi", "iss": "canvas-s2stoken", "nbf": 1764800000 + n,
              "sub": f"{n:08d}-aaaa-4bbb-8ccc-0123456789ab~PRODUCTION~{n:08d}-dddd-4eee-8fff-0123456789ab"}
    signature = base64.urlsafe_b64encode(bytes([n % 256]) * 32).rstrip(b"=").decode()
    return f"{jwt_segment(header)}.{jwt_segment(claims)}.{signature}"


TOKENS = [fake_jwt(1), fake_jwt(2)]


# ---- the reference: one line at a time, as the format is described -------------------------------------
# A record line may name its process ("[PID] - " or "pid=PID - " before the level); its parts (URL, Payload
# and its JSON, Headers, Status, Body) go to the block its process's previous record line belonged to when
# that block can take them, else to the oldest open block of the process that can; continuation lines belong
# to the record line above them. A block whose parts are still missing once a header two seconds newer than
# any before it is read is complete as it is; a request waiting longer than 120 s is unanswered. Not
# exercised here (the generated times never reach it): the restart rule of pairing.
_REF_PREFIX = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(?:,[0-9]+)? - "
                         r"(?:\[([0-9]{1,10})\] - |pid=([0-9]{1,10}) - )?[A-Za-z]+ -(?: |$)")
_REF_HEADER = re.compile(r"\[(?:(OUT)\] OUTGOING REQUEST|IN\] INCOMING RESPONSE) - (.*)")
_REF_STATUS = re.compile(r"(?:HTTP )?Status Code:(.*)")
_REF_AUTH = re.compile(r"""(?i)authorization['"]?\s*[:=]\s*['"]?([^'",}]*)""")
_REF_PIXEL = re.compile(r'"pixel_id"\s*:\s*"([^"\\]{1,200})"')
URL_WANTED, AFTER_URL, JSON_WANTED, DONE = range(4)


def _ref_event(rest: str) -> tuple[str, str]:
    rest, hint = rest.rstrip(" \t"), ""
    if rest.endswith(")") and " (" in rest:
        base, _, inner = rest.rpartition(" (")
        if ")" not in inner[:-1]:
            rest, hint = base, inner[:-1].strip().lower()
    return rest.removesuffix(" Event"), hint


def _ref_unrecognized(line: str) -> bool:
    return (line[:1] not in (" ", "\t", '"') and ("[OUT] OUTGOING REQUEST - " in line
                                                   or "[IN] INCOMING RESPONSE - " in line)
            and _REF_PREFIX.match(line) is None)


class Reference:
    """The backend format read line by line, with no cleverness (and no speed)."""

    def __init__(self, timeout: timedelta = timedelta(seconds=120)) -> None:
        self.timeout = timeout
        self.out: list[tuple[object, ...]] = []
        self.counts = {"invalid_utf8": 0, "nul_bytes": 0, "truncated_bodies": 0, "responses_without_status": 0,
                       "unpaired_responses": 0, "unpaired_requests": 0, "unanswered_requests": 0,
                       "requests_without_url": 0, "bad_timestamps": 0, "unrecognized_lines": 0}
        self.queues: dict[object, deque[dict[str, Any]]] = {}
        self.lanes: dict[str | None, dict[str, Any]] = {}  # process → {"last", "open"}
        self.cont: dict[str, Any] | None = None
        self.text: list[str] = []
        self.last_at = self.checked = datetime(1970, 1, 1, tzinfo=UTC)

    def run(self, data: bytes) -> Reference:
        lines = data.split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        for original in lines:
            if b"\0" in original:
                self.counts["nul_bytes"] += 1
            raw = original.replace(b"\0", b"").removesuffix(b"\r")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                self.counts["invalid_utf8"] += 1
                line = raw.decode("utf-8", "replace")
            self.line(line)
        self.end_cont()
        for lane in list(self.lanes.values()):
            for block in list(lane["open"]):
                self.close(block)
        for queue in self.queues.values():
            for req in queue:
                self.counts["unanswered_requests"] += 1
                self.counts["requests_without_url"] += req["url"] is None
        return self

    def line(self, line: str) -> None:
        if _ref_unrecognized(line):
            self.counts["unrecognized_lines"] += 1
        pm = _REF_PREFIX.match(line)
        if pm is None:
            if self.cont is not None:
                self.continuation(line)
            return
        self.end_cont()
        pid = pm.group(1) or pm.group(2)
        msg = line[pm.end():]
        hm = _REF_HEADER.fullmatch(msg)
        if hm is not None:
            try:
                at = datetime.strptime(line[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
                self.last_at = at
            except ValueError:
                self.counts["bad_timestamps"] += 1
                at = self.last_at
            if at > self.checked:
                self.checked = at
                self.stale(at - timedelta(seconds=2))
            event, hint = _ref_event(hm.group(2))
            key = event if pid is None else (pid.encode(), event)
            lane = self.lanes.setdefault(pid, {"last": None, "open": []})
            if hm.group(1):
                block = {"kind": "req", "at": at, "event": event, "hint": hint, "url": None, "auth": None,
                         "headers": False, "stage": URL_WANTED, "pixel": None}
                self.queues.setdefault(key, deque()).append(block)
            else:
                block = {"kind": "resp", "at": at, "event": event, "key": key, "status": None, "status_seen": False,
                         "body": None, "closer": None}
            lane["open"].append(block)
            lane["last"] = block
            return
        lane = self.lanes.get(pid)
        if lane is not None:
            self.part(lane, msg)

    def stale(self, cutoff: datetime) -> None:
        for lane in list(self.lanes.values()):
            for kind in ("resp", "req"):
                while True:
                    oldest = next((b for b in lane["open"] if b["kind"] == kind), None)
                    if oldest is None or oldest["at"] >= cutoff or oldest is self.cont:
                        break
                    self.close(oldest)

    def taker(self, lane: dict[str, Any], fits: Any) -> dict[str, Any] | None:
        if lane["last"] in lane["open"] and fits(lane["last"]):
            return lane["last"]  # type: ignore[no-any-return]
        for block in lane["open"]:
            if fits(block):
                lane["last"] = block
                return block  # type: ignore[no-any-return]
        return None

    def request_for(self, lane: dict[str, Any], *stages: int) -> dict[str, Any] | None:
        """The first stage any request is at wins (a block logs its URL first): the last line's, else the oldest."""
        for stage in stages:
            found = self.taker(lane, lambda b, stage=stage: b["kind"] == "req" and b["stage"] == stage)
            if found is not None:
                return found
        return None

    def part(self, lane: dict[str, Any], msg: str) -> None:
        if msg.startswith("URL:"):
            req = self.request_for(lane, URL_WANTED)
            if req is not None:
                req["url"], req["stage"] = msg[5:] if msg[4:5] == " " else msg[4:], AFTER_URL
        elif msg.startswith(("Status Code:", "HTTP Status Code:")):
            o = self.taker(lane, lambda b: b["kind"] == "resp" and b["body"] is None and not b["status_seen"])
            if o is not None:
                sm = _REF_STATUS.fullmatch(msg)
                assert sm is not None
                value = sm.group(1).strip(" \t")
                o["status_seen"] = True
                o["status"] = int(value) if len(value) == 3 and value.isascii() and value.isdigit() else None
        elif msg.startswith("Body:"):
            # a body goes to a response with its status first: the previous line's, else the oldest
            last = lane["last"]
            if not (last in lane["open"] and last["kind"] == "resp" and last["body"] is None):
                last = None
            bodyless = [b for b in lane["open"] if b["kind"] == "resp" and b["body"] is None]
            if last is not None and last["status_seen"]:
                o = last
            elif any(b["status_seen"] for b in bodyless):
                o = next(b for b in bodyless if b["status_seen"])
            else:
                o = last or (bodyless[0] if bodyless else None)
            if o is not None:
                lane["last"] = o
            if o is not None:
                self.body(o, msg[6:] if msg.startswith("Body: ") else msg[5:])
        elif msg.startswith("Payload:"):
            req = self.request_for(lane, AFTER_URL, URL_WANTED)
            if req is not None:
                req["stage"] = JSON_WANTED
                rest = msg[8:].strip()
                if rest[:1] in ("{", "["):
                    self.payload(req, rest)
        elif msg[:1] in ("{", "["):
            req = self.request_for(lane, JSON_WANTED)
            if req is not None:
                self.payload(req, msg)
        elif msg.startswith("Headers:"):
            req = self.request_for(lane, AFTER_URL, URL_WANTED)
            if req is not None:
                self.cont, self.text = req, [msg[8:]]
        elif msg.startswith("Authorization:"):
            req = self.request_for(lane, AFTER_URL, URL_WANTED)
            if req is not None:
                self.auth(req, msg[14:])
        elif msg.startswith("Method:"):
            self.request_for(lane, AFTER_URL, URL_WANTED)

    def body(self, o: dict[str, Any], first: str) -> None:
        o["body"] = [first]
        o["closer"] = {"{": "}", "[": "]"}.get(first.lstrip()[:1])
        if o["closer"] and first.rstrip(" \t").endswith(o["closer"]):
            try:
                json.loads(first)
            except ValueError:
                self.cont = o
                return
            self.close(o)
            return
        self.cont = o

    def payload(self, req: dict[str, Any], first: str) -> None:
        self.cont, self.text = req, [first]
        closer = {"{": "}", "[": "]"}.get(first[:1])
        if closer and first.rstrip(" \t").endswith(closer):
            try:
                json.loads(first)
            except ValueError:
                return
            self.end_cont()

    def continuation(self, line: str) -> None:
        cont = self.cont
        assert cont is not None
        if cont["kind"] == "resp":
            cont["body"].append(line)
            if cont["closer"] and line.rstrip(" \t") == cont["closer"]:
                self.cont = None
                self.close(cont)
            return
        self.text.append(line)
        if cont["stage"] == JSON_WANTED and line.rstrip(" \t") in ("}", "]"):
            self.end_cont()

    def end_cont(self) -> None:
        cont, self.cont = self.cont, None
        if cont is None:
            return
        if cont["kind"] == "resp":
            if cont["closer"]:
                self.counts["truncated_bodies"] += 1
            self.close(cont)
        elif cont["stage"] == JSON_WANTED:
            m = _REF_PIXEL.search("\n".join(self.text))
            cont["pixel"] = m.group(1) if m else None
            self.close(cont)
        else:
            cont["headers"] = True
            m = _REF_AUTH.search("\n".join(self.text))
            if m:
                self.auth(cont, m.group(1))

    def auth(self, req: dict[str, Any], value: str) -> None:
        req["headers"] = True
        if req["auth"] is None:
            req["auth"] = value.strip()

    def close(self, block: dict[str, Any]) -> None:
        """A block is complete: a response is paired and emitted; a request head stops taking parts."""
        for pid, lane in list(self.lanes.items()):
            if block in lane["open"]:
                lane["open"].remove(block)
                if not lane["open"]:
                    del self.lanes[pid]
        if block["kind"] == "req":
            block["stage"] = DONE
            return
        o = block
        if o["status"] is None:
            self.counts["responses_without_status"] += 1
        status = o["status"]
        keep = status is None or not 200 <= status < 300
        # A kept body is redacted: a token the backend quoted in it must not travel on.
        body = redact("\n".join(o["body"])) if keep and o["body"] is not None else ""
        queue = self.queues.get(o["key"])
        while queue and queue[0]["at"] < o["at"] - self.timeout:
            old = queue.popleft()
            self.counts["unanswered_requests"] += 1
            self.counts["requests_without_url"] += old["url"] is None
        request = None
        if queue:
            req = queue.popleft()
            self.counts["requests_without_url"] += req["url"] is None
            request = _ref_request(req)
        else:
            self.counts["unpaired_responses"] += 1
        self.out.append((o["at"], o["event"], status, body, request))


def _ref_request(req: dict[str, Any]) -> tuple[object, ...]:
    url = req["url"]
    path, query = (str(url).strip().partition("?")[0::2]) if url is not None else ("", "")
    path = re.sub(r"^[a-z]+://[^/]*", "", path)
    api = Api.V3 if path.startswith("/v3/") else Api.V2 if path.startswith("/v2/") else Api.UNKNOWN
    if api is Api.UNKNOWN and req["hint"] in ("v2", "v3"):
        api = Api(req["hint"])
    pixel = path.split("/")[2] or None if path.startswith("/v3/") else None
    if api is Api.V2:
        pixel = req["pixel"]  # type: ignore[assignment]
    token = next((v for k, _, v in (p.partition("=") for p in query.split("&")) if k == "access_token"), None)
    fp = kind = None
    if token:
        from urllib.parse import unquote

        raw = unquote(token)
        fp, kind = fingerprint(raw), kind_of(raw)
        placement = Placement.QUERY
    elif req["auth"] is not None:
        placement = Placement.HEADER
        value = normalize(str(req["auth"]))
        if value and "*" not in value:
            fp, kind = fingerprint(str(req["auth"])), kind_of(str(req["auth"]))
    elif req["headers"] or api is Api.V3:
        placement = Placement.NONE
    else:
        placement = Placement.UNKNOWN
    return (req["at"], req["event"], api, path, pixel, placement, fp, kind)


# ---- the code under test, fed in arbitrary chunks ------------------------------------------------------
def parse_chunks(data: bytes, cuts: list[int], timeout: str = "120s") -> tuple[list[Exchange], Assembler]:
    splitter = LineSplitter(1 << 16)
    asm = Assembler(validated(SourceConfig, {"path": "x.log", "timezone": "UTC", "pairing_timeout": timeout}),
                    "x.log")
    got: list[Exchange] = []
    last = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        got += asm.feed(splitter.push(data[last:cut]))
        last = max(last, cut)
    got += asm.feed(splitter.flush())
    got += asm.flush()
    return got, asm


def as_tuples(exchanges: list[Exchange]) -> list[tuple[object, ...]]:
    out = []
    for e in exchanges:
        r = e.request
        req = None if r is None else (r.at, r.event, r.api, r.path, r.pixel, r.placement, r.token_fp, r.token_kind)
        out.append((e.response.at, e.response.event, e.response.status, e.response.body, req))
    return out


def stats_of(asm: Assembler) -> dict[str, int]:
    j = asm.stats.to_json()
    return {k: j[k] for k in Reference().counts}


# ---- generated well-formed logs --------------------------------------------------------------------------
@st.composite
def exchange_specs(draw: st.DrawFn) -> dict[str, object]:
    api = draw(st.sampled_from(["v3", "v3", "v3-notoken", "v3-encoded", "v2", "v2-header"]))
    status = draw(st.sampled_from(STATUSES))
    body_kind = draw(st.sampled_from(["pretty", "compact", "text", "multitext"]))
    return {"event": draw(st.sampled_from(EVENTS)), "api": api, "status": status, "body_kind": body_kind,
            "token": draw(st.integers(0, 1)), "http": draw(st.booleans()), "shift": draw(st.booleans())}


def _body(spec: dict[str, object], i: int) -> str:
    obj = {"status": "INVALID" if spec["status"] != 200 else "VALID", "reason": f"reason {i}",
           "errors": {"codes": [f"E{i}"], "error_msgs": [f"bad {i}"]}}
    kind = spec["body_kind"]
    if kind == "pretty":
        return json.dumps(obj, indent=2)
    if kind == "compact":
        return json.dumps(obj)
    if kind == "text":
        return f"Invalid access token {i}"
    return f"upstream said no {i}\nsecond line of text\n  third, indented"


def write_blocks(specs: list[dict[str, object]], order: list[int]) -> tuple[bytes, list[tuple[object, ...]]]:
    """Render requests and responses in an interleaving (``order`` picks which pending block goes next)."""
    lines: list[str] = []
    expected: list[tuple[object, ...]] = []
    pending: list[int] = []  # requests written, responses not yet
    nxt = 0
    steps = iter(order)
    while nxt < len(specs) or pending:
        choice = next(steps, 0)
        if nxt < len(specs) and (not pending or choice % 2 == 0):
            pending.append(nxt)
            _write_request(lines, specs[nxt], nxt)
            nxt += 1
            continue
        # answer the oldest pending request of some event (FIFO per event, as the backend's calls are)
        event = specs[pending[choice % len(pending)]]["event"]
        i = next(p for p in pending if specs[p]["event"] == event)
        pending.remove(i)
        expected.append(_write_response(lines, specs[i], i))
    return ("\n".join(lines) + "\n").encode("utf-8"), expected


def _ts(i: int, extra: int = 0) -> str:
    return (T0 + timedelta(seconds=i * 7 + extra)).strftime("%Y-%m-%d %H:%M:%S") + " - INFO - "


def _write_request(lines: list[str], spec: dict[str, object], i: int) -> None:
    p = _ts(i)
    token = TOKENS[int(spec["token"])]  # type: ignore[call-overload]
    api = str(spec["api"])
    pixel = f"pixel-{i % 3}"
    hint = "v2" if api.startswith("v2") else "v3"
    url = {"v3": f"https://tr.snapchat.com/v3/{pixel}/events?access_token={token}",
           "v3-encoded": f"https://tr.snapchat.com/v3/{pixel}/events?access_token={quote(token, safe='')}&x=1",
           "v3-notoken": f"https://tr.snapchat.com/v3/{pixel}/events",
           "v2": "https://tr.snapchat.com/v2/conversion", "v2-header": "https://tr.snapchat.com/v2/conversion"}[api]
    lines += [p + SEP, f"{p}[OUT] OUTGOING REQUEST - {spec['event']} Event ({hint})", f"{p}URL: {url}",
              f"{p}Method: POST"]
    if api == "v2-header":
        lines.append(f'{p}Headers: {{"Authorization": "Bearer {token}", "Content-Type": "application/json"}}')
    payload: dict[str, object] = {"data": [{"event_name": spec["event"], "i": i}]}
    if api.startswith("v2"):  # v2 names its pixel in the payload
        payload = {"pixel_id": pixel, "event_type": spec["event"], "i": i}
    lines += [f"{p}Payload:", p + json.dumps(payload, indent=2), p + SEP]


def _write_response(lines: list[str], spec: dict[str, object], i: int) -> tuple[object, ...]:
    p = _ts(i, 3)
    q = _ts(i, 4) if spec["shift"] else p  # a new second inside the block
    status = int(spec["status"])  # type: ignore[call-overload]
    body = _body(spec, i)
    word = "HTTP Status Code" if spec["http"] else "Status Code"
    lines += [p + SEP, f"{p}[IN] INCOMING RESPONSE - {spec['event']} Event", f"{q}{word}: {status}",
              f"{q}Body: {body}", q + SEP, q]
    token = TOKENS[int(spec["token"])]  # type: ignore[call-overload]
    api = str(spec["api"])
    pixel = f"pixel-{i % 3}"
    if api.startswith("v3"):
        req_api, path, px = Api.V3, f"/v3/{pixel}/events", pixel
        placement = Placement.NONE if api == "v3-notoken" else Placement.QUERY
    else:
        req_api, path, px = Api.V2, "/v2/conversion", pixel
        placement = Placement.HEADER if api == "v2-header" else Placement.UNKNOWN
    has_token = placement in (Placement.QUERY, Placement.HEADER)
    request = (T0 + timedelta(seconds=i * 7), spec["event"], req_api, path, px, placement,
               fingerprint(token) if has_token else None, TokenKind.CANVAS_S2S if has_token else None)
    return (T0 + timedelta(seconds=i * 7 + 3), spec["event"], status, "" if 200 <= status < 300 else body, request)


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.lists(exchange_specs(), min_size=1, max_size=12), st.lists(st.integers(0, 1000), max_size=40),
       st.lists(st.integers(0, 10**6), max_size=12))
def test_written_exchanges_parse_back_exactly(specs: list[dict[str, object]], order: list[int],
                                              cuts: list[int]) -> None:
    data, expected = write_blocks(specs, order)
    got, asm = parse_chunks(data, cuts)
    assert as_tuples(got) == expected
    assert asm.stats.unpaired_responses == 0 and asm.stats.unpaired_requests == 0
    assert asm.stats.truncated_bodies == 0 and asm.stats.responses_without_status == 0
    assert asm.stats.unanswered_requests == asm.stats.requests_without_url == asm.interleaved == 0
    assert set(asm.tokens) == {fingerprint(TOKENS[int(s["token"])]) for s in specs  # type: ignore[call-overload]
                               if s["api"] not in ("v3-notoken", "v2")}


@SETTINGS
@given(st.lists(exchange_specs(), min_size=1, max_size=8), st.lists(st.integers(0, 1000), max_size=20),
       st.integers(0, 10**6))
def test_checkpoint_at_held_bytes_neither_repeats_nor_loses(specs: list[dict[str, object]], order: list[int],
                                                            cut: int) -> None:
    data, expected = write_blocks(specs, order)
    cut %= len(data) + 1
    splitter = LineSplitter(1 << 16)
    asm = Assembler(SourceConfig(path="x.log", timezone="UTC"), "x.log")
    first = asm.feed(splitter.push(data[:cut]))
    checkpoint = cut - splitter.pending - asm.held_bytes
    rest, _ = parse_chunks(data[checkpoint:], [])
    got = [(e.response.at, e.response.event, e.response.status, e.response.body) for e in first + rest]
    assert got == [t[:4] for t in expected]


# ---- arbitrary line soup: the fast path agrees with the reference ------------------------------------------
_PFX = ["2025-12-03 23:35:17 - INFO - ", "2025-12-03 23:35:18 - INFO - ", "2025-12-03 23:35:17,123 - ERROR - ",
        "2025-13-45 23:35:17 - INFO - ", "2025-12-03 23:35:17 - INFO -", "2025-12-03 23:35:17 - [101] - INFO - ",
        "2025-12-03 23:35:18 - pid=202 - INFO - ", "2025-12-03 23:35:17 - [202 - INFO - "]
_MSGS = ["[OUT] OUTGOING REQUEST - PURCHASE Event (v3)", "[OUT] OUTGOING REQUEST - PAGE_VIEW Event (v2)",
         "[IN] INCOMING RESPONSE - PURCHASE Event", "[IN] INCOMING RESPONSE - PAGE_VIEW Event",
         f"URL: https://tr.snapchat.com/v3/px/events?access_token={TOKENS[0]}", "URL: https://tr.snapchat.com/v2/conversion",
         "Method: POST", "Payload:", "{", "Status Code: 401", "HTTP Status Code: 200", "Status Code: abc",
         'Body: {"status": "VALID"}', "Body: {", "Body: [", "Body: Invalid token", "Body: ", SEP, "",
         f'Headers: {{"Authorization": "Bearer {TOKENS[1]}"}}', "Headers: {", "Authorization: Bearer ***",
         f"Authorization: Bearer {TOKENS[0]}", 'Payload: {"pixel_id": "px-inline"}', '{"pixel_id": "px-one"}',
         "URL: https://tr.snapchat.com/v3/px/events", "[OUT] OUTGOING REQUEST - PAGE_VIEW Event (v3)"]
_CONT = ["}", "]", '  "reason": "x"', "  }", "plain text", f'  "Authorization": "Bearer {TOKENS[1]}"',
         "}  ", "  [IN] INCOMING RESPONSE - PURCHASE Event", '  "pixel_id": "px-cont",',
         "INFO:app:[IN] INCOMING RESPONSE - PURCHASE Event"]


@st.composite
def soup(draw: st.DrawFn) -> bytes:
    parts: list[bytes] = []
    for _ in range(draw(st.integers(1, 60))):
        kind = draw(st.integers(0, 9))
        if kind < 6:
            line = (draw(st.sampled_from(_PFX)) + draw(st.sampled_from(_MSGS))).encode()
        elif kind < 9:
            line = draw(st.sampled_from(_CONT)).encode()
        else:
            line = draw(st.sampled_from([b"\xff\xfe bad", b"2025-12-03 23:35:17 - INFO - Status\0 Code: 500",
                                         b"Body\r", b"\0"]))
        parts.append(line + draw(st.sampled_from([b"\n", b"\n", b"\r\n"])))
    return b"".join(parts)


@SETTINGS
@given(soup(), st.lists(st.integers(0, 10**6), max_size=10))
def test_fast_path_agrees_with_line_by_line_reference(data: bytes, cuts: list[int]) -> None:
    got, asm = parse_chunks(data, cuts)
    ref = Reference().run(data)
    assert as_tuples(got) == ref.out
    assert stats_of(asm) == ref.counts


def test_reference_and_fast_path_agree_on_a_long_generated_log() -> None:
    specs = [{"event": EVENTS[i % 4], "api": ["v3", "v2-header", "v3-encoded"][i % 3], "status": STATUSES[i % 9],
              "body_kind": ["pretty", "text", "compact", "multitext"][i % 4], "token": i % 2, "http": i % 5 == 0,
              "shift": i % 7 == 0} for i in range(400)]
    data, expected = write_blocks(specs, [i * 7919 % 13 for i in range(900)])
    # Its responses are written long after later requests (times 7 s apart, not in log order): no timeout.
    got, asm = parse_chunks(data, list(range(0, len(data), 4093)), timeout="1d")
    assert as_tuples(got) == expected == Reference(timedelta(days=1)).run(data).out
    assert asm.requests == 400 and asm.requests_by_api == {"v3": 267, "v2": 133}
