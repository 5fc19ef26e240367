"""The backend format line by line: request and response blocks whose parts arrive apart, because several
processes write one file and their logging calls interleave, or because a block spans two seconds."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta

from snapwatch.ingest.pairing import Key, Pairing
from snapwatch.ingest.parts import (
    AUTH_IN_HEADERS,
    CLOSERS,
    IN,
    MAX_BODY_CHARS,
    MAX_PAYLOAD_CHARS,
    OUT,
    PREFIX_MATCH,
    STATUS,
    Block,
    Lane,
    OpenResponse,
    complete_json,
    looks_unrecognized,
    status_of,
)
from snapwatch.ingest.shapes import (
    AFTER_URL,
    HEAD_DONE,
    JSON_WANTED,
    URL_WANTED,
    PendingRequest,
    TokenBook,
    UrlFields,
    api_key,
    new_exchange,
    payload_pixel,
)
from snapwatch.ingest.stamps import EPOCH, Stamps
from snapwatch.model import Exchange, ParseStats
from snapwatch.redact import redact

MAX_OPEN = 256  # open blocks per process; the oldest is closed as it is when more open
# The lines of one block are consecutive logging calls, written within moments: a part still missing
# once a block header this much later (in record time) was read will not come.
PART_WINDOW = timedelta(seconds=2)
HeaderRest = Callable[[bytes], tuple[str, str]]


class Blocks:
    """The blocks being read line by line, per process; emits each response as it completes.

    ``interleaved`` counts parts that arrived after another block's lines in a log that names no
    process: evidence that several processes write the file. ``open_requests`` are request heads not yet
    counted in ``requests_by_api``.
    """

    def __init__(self, stats: ParseStats, book: TokenBook, pairing: Pairing, stamps: Stamps,
                 header_rest: HeaderRest, by_status: dict[bytes, int], requests_by_api: dict[str, int],
                 source: str) -> None:
        self.stats, self.book, self.pairing, self.stamps = stats, book, pairing, stamps
        self.header_rest = header_rest
        self.by_status, self.requests_by_api, self.source = by_status, requests_by_api, source
        self.lanes: dict[bytes | None, Lane] = {}
        self.cont: Block | None = None  # the block whose multi-line part (body, payload, headers) is being read
        self.cont_text: list[str] | None = None  # a payload's or Headers line's text so far (None: not kept)
        self.cont_chars = 0
        self.open_requests = 0
        self.interleaved = 0
        self.mark = 0  # where the line being read starts: a failure skips that line
        self._checked = EPOCH

    @property
    def idle(self) -> bool:
        return not self.lanes and self.cont is None

    # ---- blocks the buffer scan could not read in one go -------------------------------------------------
    def request(self, at: datetime, lane: bytes | None, key: Key, event: str, hint: str,
                url: UrlFields | None = None) -> PendingRequest:
        """A request header; ``url`` when its URL was read already (its payload is still wanted)."""
        req = PendingRequest(at, event, hint)
        if url is not None:
            req.url = url
            req.stage = AFTER_URL
        self.pairing.room_for(key).append(req)
        if url is not None:
            self.pairing.note(req.token_fp, at)
        self.open_requests += 1
        ln = self._lane(lane)
        ln.requests.append(req)
        ln.last = req
        if len(ln.requests) > MAX_OPEN:
            self._head_done(ln, ln.requests[0])
        return req

    def response(self, at: datetime, lane: bytes | None, key: Key, event: str, start: int,
                 out: list[Exchange]) -> None:
        """A response header: its status and body are still to come."""
        o = OpenResponse(at, event, key, start)
        ln = self._lane(lane)
        ln.responses.append(o)
        ln.last = o
        if len(ln.responses) > MAX_OPEN:
            self._emit(ln, ln.responses[0], out)

    def held_start(self) -> int | None:
        """Where in the current buffer the oldest open response starts (-1: in an earlier one; None: none open)."""
        starts = [o.start for ln in self.lanes.values() for o in ln.responses]
        return min(starts) if starts else None

    def new_buffer(self) -> None:
        for ln in self.lanes.values():
            for o in ln.responses:
                o.start = -1

    # ---- line by line ------------------------------------------------------------------------------------
    def walk(self, buf: bytes, pos: int, out: list[Exchange]) -> int:
        """Read lines from ``pos`` until no block is open or the buffer ends; returns where it stopped."""
        size = len(buf)
        prefix = PREFIX_MATCH
        while pos < size and (self.lanes or self.cont is not None):
            self.mark = pos
            eol = buf.find(b"\n", pos)
            pm = prefix(buf, pos)
            if pm is None:
                line = buf[pos:eol]
                if looks_unrecognized(line):
                    self.stats.unrecognized_lines += 1
                if self.cont is not None:
                    self._continue(line.decode("utf-8"), out)
                pos = eol + 1
                continue
            if self.cont is not None:
                self._end_cont(out)
            self._record(buf, pos, pm, eol, out)
            pos = eol + 1
        return pos

    def _record(self, buf: bytes, pos: int, pm: re.Match[bytes], eol: int, out: list[Exchange]) -> None:
        lane = pm.group(1)
        start = pm.end()
        msg = buf[start:eol]
        if msg.startswith(OUT) or msg.startswith(IN):
            at = self.stamps.time(buf[pos:start])
            if at > self._checked:
                self._close_stale(at, out)
            event, hint = self.header_rest(msg[len(OUT) if msg[1:2] == b"O" else len(IN):])
            key: Key = event if lane is None else (lane, event)
            if msg[1:2] == b"O":
                self.request(at, lane, key, event, hint)
            else:
                self.response(at, lane, key, event, pos, out)
            return
        ln = self.lanes.get(lane)
        if ln is not None:
            self._part(ln, msg, out)

    def _part(self, ln: Lane, msg: bytes, out: list[Exchange]) -> None:
        """A record line that may be a part of an open block of its process."""
        if msg.startswith(b"URL:"):
            req = self._request_for(ln, URL_WANTED)
            if req is not None:
                req.url = self.book.url(msg[5:] if msg[4:5] == b" " else msg[4:])
                req.stage = AFTER_URL
                self.pairing.note(req.token_fp, req.at)
        elif msg.startswith(b"Status Code:") or msg.startswith(b"HTTP Status Code:"):
            o = self._response_for(ln, status=True)
            if o is not None:
                sm = STATUS.fullmatch(msg)
                assert sm is not None
                o.status_seen = True
                o.status = status_of(sm.group(1))
                o.keep_body = o.status is None or not 200 <= o.status < 300
        elif msg.startswith(b"Body:"):
            o = self._response_for(ln, status=False)
            if o is not None:
                self._start_body(ln, o, msg[6:] if msg.startswith(b"Body: ") else msg[5:], out)
        elif msg.startswith(b"Payload:"):
            req = self._request_for(ln, AFTER_URL, URL_WANTED)
            if req is not None:
                req.stage = JSON_WANTED
                rest = msg[8:].strip()
                if rest[:1] in (b"{", b"["):
                    self._start_payload(ln, req, rest.decode("utf-8"))
        elif msg[:1] in (b"{", b"["):
            req = self._request_for(ln, JSON_WANTED)
            if req is not None:
                self._start_payload(ln, req, msg.decode("utf-8"))
        elif msg.startswith(b"Headers:"):
            req = self._request_for(ln, AFTER_URL, URL_WANTED)
            if req is not None:
                first = msg[8:].decode("utf-8")
                self.cont, self.cont_text, self.cont_chars = req, [first], len(first)
        elif msg.startswith(b"Authorization:"):
            req = self._request_for(ln, AFTER_URL, URL_WANTED)
            if req is not None:
                self._header_value(req, msg[14:].decode("utf-8"))
        elif msg.startswith(b"Method:"):
            self._request_for(ln, AFTER_URL, URL_WANTED)

    # ---- which block a part belongs to -------------------------------------------------------------------
    def _request_for(self, ln: Lane, *stages: int) -> PendingRequest | None:
        """The request a head line belongs to: the first of ``stages`` that one is at wins (a block logs its
        URL before the rest), the previous line's request first, else the oldest."""
        last = ln.last
        for stage in stages:
            if type(last) is PendingRequest and last.stage == stage:
                return last
            for req in ln.requests:
                if req.stage == stage:
                    self._interleaved(ln, req)
                    return req
        return None

    def _response_for(self, ln: Lane, *, status: bool) -> OpenResponse | None:
        """The response a Status line (``status``) or a Body line belongs to. A body goes to a response
        that has its status first (a block logs its status before its body): the previous line's, else
        the oldest; only then to one without a status (backends that log none)."""
        last = ln.last if type(ln.last) is OpenResponse else None
        if last is not None and (last.done or last.body is not None):
            last = None
        if status:
            if last is not None and not last.status_seen:
                return last
            return self._oldest(ln, lambda o: o.body is None and not o.status_seen)
        if last is not None and last.status_seen:
            return last
        found = self._oldest(ln, lambda o: o.body is None and o.status_seen)
        if found is None and last is not None:
            return last
        return found or self._oldest(ln, lambda o: o.body is None)

    def _oldest(self, ln: Lane, fits: Callable[[OpenResponse], bool]) -> OpenResponse | None:
        for o in ln.responses:
            if fits(o):
                self._interleaved(ln, o)
                return o
        return None

    def _interleaved(self, ln: Lane, block: Block) -> None:
        ln.last = block
        if ln is self.lanes.get(None):
            self.interleaved += 1

    # ---- multi-line parts --------------------------------------------------------------------------------
    def _start_body(self, ln: Lane, o: OpenResponse, first: bytes, out: list[Exchange]) -> None:
        ln.last = o
        line = first.decode("utf-8")
        o.body = []
        o.add_body_line(line)
        o.closer = CLOSERS.get(line.lstrip()[:1])
        if o.closer is not None and line.rstrip(" \t").endswith(o.closer):
            whole = complete_json(line)
            if whole is None:  # too deeply nested to read: kept as text, counted, the response still counts
                self.stats.poison_records += 1
            if whole is not False:
                self._emit(ln, o, out)
                return
        self.cont = o

    def _start_payload(self, ln: Lane, req: PendingRequest, first: str) -> None:
        ln.last = req
        # only a v2 payload is read (for its pixel_id); any other is passed over
        self.cont, self.cont_text = req, [first] if api_key(req) == "v2" and req.pixel is None else None
        self.cont_chars = len(first)
        closer = CLOSERS.get(first[:1])
        if closer is not None and first.rstrip(" \t").endswith(closer) and complete_json(first) is not False:
            self._end_cont([])

    def _continue(self, line: str, out: list[Exchange]) -> None:
        """A continuation line: part of the body, payload or Headers text being read."""
        cont = self.cont
        if type(cont) is OpenResponse:
            cont.add_body_line(line)
            if cont.closer is not None and line.rstrip(" \t") == cont.closer:
                self.cont = None
                self._emit(self.lanes_of(cont), cont, out)
            return
        assert type(cont) is PendingRequest
        if self.cont_text is not None and self.cont_chars < MAX_PAYLOAD_CHARS:
            self.cont_text.append(line)
            self.cont_chars += len(line) + 1
        if cont.stage == JSON_WANTED and line.rstrip(" \t") in ("}", "]"):
            self._end_cont(out)

    def _end_cont(self, out: list[Exchange]) -> None:
        cont, text = self.cont, self.cont_text
        self.cont = self.cont_text = None
        if type(cont) is OpenResponse:
            if cont.closer is not None:
                self.stats.truncated_bodies += 1
            self._emit(self.lanes_of(cont), cont, out)
        elif type(cont) is PendingRequest and cont.stage == JSON_WANTED:
            if text is not None and cont.pixel is None:
                cont.pixel = payload_pixel("\n".join(text)[:MAX_PAYLOAD_CHARS])
            ln = self.lanes_of(cont)
            if ln is not None:
                self._head_done(ln, cont)
        elif type(cont) is PendingRequest and text is not None:  # a Headers line and its continuation
            cont.headers_seen = True
            m = AUTH_IN_HEADERS.search("\n".join(text))
            if m is not None:
                self._header_value(cont, m.group(1))

    def _header_value(self, req: PendingRequest, value: str) -> None:
        """An Authorization header value; the first one of a request counts."""
        req.headers_seen = True
        if req.auth is None:
            req.auth = self.book.header(value)
            self.pairing.note(req.token_fp, req.at)

    def lanes_of(self, block: Block) -> Lane | None:
        """The lane holding ``block`` open (None once it is closed)."""
        for ln in self.lanes.values():
            if block in ln.responses or block in ln.requests:
                return ln
        return None

    # ---- closing -----------------------------------------------------------------------------------------
    def _head_done(self, ln: Lane, req: PendingRequest) -> None:
        req.stage = HEAD_DONE
        ln.requests.remove(req)
        self.open_requests -= 1
        api = api_key(req)
        self.requests_by_api[api] = self.requests_by_api.get(api, 0) + 1
        self._drop_lane_if_empty(ln)

    def _emit(self, ln: Lane | None, o: OpenResponse, out: list[Exchange]) -> None:
        o.done = True
        if ln is not None:
            ln.responses.remove(o)
            self._drop_lane_if_empty(ln)
        request = self.pairing.take(o.key, o.at)
        status = o.status
        body = "" if not o.keep_body or o.body is None else redact("\n".join(o.body))[:MAX_BODY_CHARS]
        if status is None:
            self.stats.responses_without_status += 1
        key = b"none" if status is None else str(status).encode("ascii")
        self.by_status[key] = self.by_status.get(key, 0) + 1
        out.append(new_exchange(o.at, o.event, status, body, request, self.source))

    def _drop_lane_if_empty(self, ln: Lane) -> None:
        if not ln.requests and not ln.responses:
            for name, lane in list(self.lanes.items()):
                if lane is ln:
                    del self.lanes[name]

    def _close_stale(self, now: datetime, out: list[Exchange]) -> None:
        """Close every block whose parts stopped coming (see PART_WINDOW), oldest first."""
        self._checked = now
        cutoff = now - PART_WINDOW
        for ln in list(self.lanes.values()):
            while ln.responses and ln.responses[0].at < cutoff and ln.responses[0] is not self.cont:
                self._emit(ln, ln.responses[0], out)
            while ln.requests and ln.requests[0].at < cutoff and ln.requests[0] is not self.cont:
                self._head_done(ln, ln.requests[0])

    def close_all(self, out: list[Exchange]) -> None:
        """End of input (or a quiet follower): every open block is complete as it is."""
        if self.cont is not None:
            self._end_cont(out)
        for ln in list(self.lanes.values()):
            while ln.responses:
                self._emit(ln, ln.responses[0], out)
            while ln.requests:
                self._head_done(ln, ln.requests[0])
        self.lanes.clear()

    def drop_cont(self) -> None:
        """After a failure inside a multi-line part: forget the part (its block stays open)."""
        self.cont = self.cont_text = None

    def forget(self) -> None:
        """After a failure while closing: forget every open block (their requests stay counted and paired)."""
        self.drop_cont()
        for req in [r for ln in self.lanes.values() for r in ln.requests]:
            self.requests_by_api[api_key(req)] = self.requests_by_api.get(api_key(req), 0) + 1
        self.open_requests = 0
        self.lanes.clear()

    def _lane(self, lane: bytes | None) -> Lane:
        ln = self.lanes.get(lane)
        if ln is None:
            ln = self.lanes[lane] = Lane()
        return ln
