"""Log lines → log records → exchanges: the built-in backend format's multi-line blocks, and the pairing shared
with the one-line formats (JSON lines, custom regex: ``lineformats``)."""

from __future__ import annotations

import json
import re
from datetime import datetime

from snapwatch.config import SourceConfig
from snapwatch.ingest.lineformats import LineReader
from snapwatch.ingest.pairing import MAX_QUEUED_REQUESTS, Pairing
from snapwatch.ingest.rawtext import clean, original_offset
from snapwatch.ingest.shapes import (
    PendingRequest,
    RequestFields,
    TokenBook,
    api_key,
    build_request,
    new_exchange,
    new_request,
)
from snapwatch.ingest.stamps import EPOCH, Stamps, zone_of
from snapwatch.model import Exchange, ParseStats
from snapwatch.redact import redact

MAX_BODY_CHARS = 65536  # the raw body kept for diagnosis is cut here
# Every body kept (only non-2xx ones are) goes through ``redact`` first: a backend's error wrapper may quote
# the request URL, token and all, and kept bodies reach evidence, alerts and the state file.

# A record line: "YYYY-mm-dd HH:MM:SS[,ms] - LEVEL - message". Anything else continues the record above.
_PREFIX = re.compile(rb"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(?:,[0-9]+)? - [A-Za-z]+ -(?: |(?=\n))")
_P = _PREFIX.pattern
# Searched over whole buffers: its literal first byte lets the regex engine skip most of the text.
# Every header line holds "ING RE" (OUTGOING REQUEST, INCOMING RESPONSE): a literal search locates the
# few candidates (a compiled literal pattern's search: a sixth faster than bytes.find on these logs,
# measured), then one anchored match reads the whole block head: the header line and, when they
# follow at once, the request's URL line or the response's status line and pretty JSON body
# (closed by "}" at column 0). Groups: OUT, event, api hint, url, status, body.
_MARK = b"ING RE"
_MARK_SEARCH = re.compile(re.escape(_MARK)).search
# The lines after a header are matched against the header's own prefix (group 1): the common block,
# written by consecutive logging calls within one second, matches in one go; any other shape (a new
# second, another level, extra head lines) fails here and is read line by line instead.
# Request: URL, optional Method, then Payload. Response: status, then a pretty JSON body closed by
# "}" at column 0. Groups: prefix, OUT, the rest of the header line, url, status, body.
_BLOCK = re.compile(
    rb"(" + _P + rb")\[(?:(OUT)\] OUTGOING REQUEST|IN\] INCOMING RESPONSE) - ([^\n]*)\n"
    rb"(?(2)(?:\1URL: ?([^\n]*)\n(?:\1Method:[^\n]*\n)?(?=\1Payload:)|)"
    rb"|(?:\1(?:HTTP )?Status Code:[ \t]*([0-9]+)[ \t]*\n\1Body: (\{\n(?:[ \t][^\n]*\n)*\}[ \t]*)\n)?)"
)
# The rest of a header line: the event name runs to " Event", " (" or the end (it may hold spaces).
_HEADER_REST = re.compile(r"(.*?)(?: Event)?(?: \(([^)]*)\))?[ \t]*")
_STATUS = re.compile(rb"(?:HTTP )?Status Code:(.*)")
_AUTH_IN_HEADERS = re.compile(r"""(?i)authorization['"]?\s*[:=]\s*['"]?([^'",}]*)""")
_CLOSERS = {"{": "}", "[": "]"}


class _Open:
    """A response whose block is still being read."""

    __slots__ = ("at", "body", "body_chars", "closer", "event", "keep_body", "status", "status_seen")

    def __init__(self, at: datetime, event: str) -> None:
        self.at, self.event = at, event
        self.status: int | None = None
        self.status_seen = False
        self.body: list[str] | None = None  # None until the Body line
        self.body_chars = 0
        self.closer: str | None = None  # "}" or "]" when the body is JSON
        self.keep_body = True

    def add_body_line(self, line: str) -> None:
        assert self.body is not None
        if self.keep_body and self.body_chars <= MAX_BODY_CHARS:
            self.body.append(line)
            self.body_chars += len(line) + 1


class Assembler:
    """Turns one source's whole lines into exchanges; keeps what a later line may still complete.

    ``held_bytes`` is how many of the bytes fed so far belong to a response not yet emitted, so a
    checkpoint at ``fed_offset - held_bytes`` neither repeats nor loses it. ``tokens`` maps the
    fingerprint of every token seen in requests to its kind; the tokens themselves are not kept.
    ``stats.long_lines`` belongs to the LineSplitter feeding this assembler and is left to its owner;
    ``stats.lines`` is not counted (counting every newline costs a tenth of the scan time).
    """

    def __init__(self, config: SourceConfig, source: str) -> None:
        self.source = source
        self.format = config.format
        self.stats = ParseStats()
        self._book = TokenBook()
        self.tokens = self._book.kinds  # fingerprint → kind
        self.token_reports = self._book.reports  # fingerprint → what the token is (no token inside)
        self.held_bytes = 0
        self.requests_by_api: dict[str, int] = {}  # api value → requests (cumulative)
        self._by_status: dict[bytes, int] = {}  # status digits or b"none" → responses (cumulative)
        zone = zone_of(config.timezone)
        self._lines = None if config.format == "backend" else LineReader(config, zone, self.stats)
        self._stamps = Stamps(zone, self.stats)
        self._pairing = Pairing(self.stats)
        self._heads: dict[bytes, tuple[str, str]] = {}
        self._requests: dict[tuple[str, bytes | None], tuple[str, RequestFields]] = {}
        self._head: PendingRequest | None = None  # the request whose head lines are being read
        self._head_text: list[str] | None = None  # a Headers line and its continuation lines
        self._open: _Open | None = None

    @property
    def tokens_in_log(self) -> bool:
        """Whether any request so far carried a token."""
        return self._book.in_log

    @property
    def requests(self) -> int:
        """Requests seen so far."""
        return sum(self.requests_by_api.values()) + (self._head is not None)

    @property
    def by_status(self) -> dict[str, int]:
        """Responses seen so far by status (its digits, or "none" when the block had no status)."""
        return {k.decode("ascii"): n for k, n in self._by_status.items()}

    # ---- input -------------------------------------------------------------------------------------
    def feed(self, lines: bytes) -> list[Exchange]:
        """Whole lines in (each ending in ``b"\\n"``); the exchanges they complete out, in order."""
        if not lines:
            return []
        buf = clean(lines, self.stats)
        out: list[Exchange] = []
        if self.format != "backend":
            self._feed_records(buf, out)
            return out
        held_before = self.held_bytes if self._open is not None else 0
        start = self._feed_backend(buf, out)
        if self._open is None:
            self.held_bytes = 0
        elif start < 0:
            self.held_bytes = held_before + len(lines)
        else:
            self.held_bytes = len(lines) - (start if buf is lines else original_offset(lines, buf, start))
        return out

    def flush(self, *, end_of_input: bool = True) -> list[Exchange]:
        """Emit the response still open. At the end of input, requests never answered are counted too;
        a follower's quiet flush (``end_of_input=False``) keeps them waiting for their responses."""
        out: list[Exchange] = []
        if self._open is not None:
            self._close(out)
        self._end_head()
        self.held_bytes = 0
        if end_of_input:
            self._pairing.end_of_input()
        return out

    # ---- the backend format ------------------------------------------------------------------------
    def _feed_backend(self, buf: bytes, out: list[Exchange]) -> int:  # noqa: PLR0915 (one hot loop, inlined on purpose)
        """Parse ``buf``; return where the response still open starts in it (-1: before it)."""
        pos = 0
        if self._head is not None:
            pos = self._walk_head(buf, pos)
            if self._head is not None:
                return -1
        if self._open is not None:
            pos = self._walk_response(buf, pos, out)
            if self._open is not None:
                return -1
        # The hot loop: one find and one anchored match per block, everything bound to locals.
        match, rfind, find, mark = _BLOCK.match, buf.rfind, buf.find, _MARK_SEARCH
        stamps, heads, requests = self._stamps, self._heads, self._requests
        times, time_of, take, room_for = stamps.cache, stamps.time, self._pairing.take, self._pairing.room_for
        queues, source, by_status, api_count = self._pairing.queues, self.source, self._by_status, self.requests_by_api
        last_url: bytes | None = None
        last_hint = api = ""
        fields: RequestFields | None = None
        while True:
            found = mark(buf, pos)
            if found is None:
                return -1
            i = found.start()
            line_start = rfind(b"\n", 0, i) + 1
            m = match(buf, line_start)
            if m is None:
                pos = find(b"\n", i) + 1
                continue  # header-like text inside a payload or body, not a record of its own
            pos = m.end()
            prefix, outgoing, rest, url, status_b, body = m.groups()
            at = stamps.last_at = times.get(prefix) or time_of(prefix)
            event, hint = heads.get(rest) or self._header_rest(rest)
            if outgoing:
                queue = queues.get(event)
                if queue is None or len(queue) >= MAX_QUEUED_REQUESTS:
                    queue = room_for(event)
                if url is None:  # not the usual head: read it line by line
                    self._head = PendingRequest(at, event, hint)
                    queue.append(self._head)
                    pos = self._walk_head(buf, pos)
                    if self._head is not None:
                        return -1
                    continue
                if url != last_url or hint != last_hint or fields is None:
                    last_url, last_hint = url, hint
                    api, fields = requests.get((hint, url)) or self._request_fields((hint, url))
                api_count[api] += 1
                queue.append(new_request(at, event, fields))
                continue
            if status_b is None:
                self._open = _Open(at, event)
                pos = self._walk_response(buf, pos, out)
                if self._open is not None:
                    return line_start
                continue
            by_status[status_b] = by_status.get(status_b, 0) + 1
            request = take(event)
            status = int(status_b)
            text = "" if 200 <= status < 300 else redact(body.decode("utf-8"))[:MAX_BODY_CHARS]
            out.append(new_exchange(at, event, status, text, request, source))

    def _header_rest(self, rest: bytes) -> tuple[str, str]:
        m = _HEADER_REST.fullmatch(rest.decode("utf-8"))
        assert m is not None  # every group is optional
        parsed = (m.group(1), (m.group(2) or "").strip().lower())
        if len(self._heads) >= 256:
            self._heads.clear()
        self._heads[rest] = parsed
        return parsed

    def _request_fields(self, key: tuple[str, bytes | None]) -> tuple[str, RequestFields]:
        hint, url = key
        req = PendingRequest(EPOCH, "", hint)
        if url is not None:
            req.url = self._book.url(url)
        built = build_request(req)
        value = (api_key(req), (built.api, built.path, built.pixel, built.placement, built.token_fp, built.token_kind))
        self.requests_by_api.setdefault(value[0], 0)
        # Keyed by the URL as logged (it holds the token): private, a handful of entries, never shown.
        if len(self._requests) >= 16:
            self._requests.clear()
        self._requests[key] = value
        return value

    def _walk_head(self, buf: bytes, pos: int) -> int:
        """Read the request head (URL, Method, Headers, Authorization lines) line by line."""
        req = self._head
        assert req is not None
        size = len(buf)
        while pos < size:
            eol = buf.find(b"\n", pos)
            pm = _PREFIX.match(buf, pos)
            if pm is None:
                if self._head_text is None:
                    break  # a continuation line ends the head unless it continues a Headers line
                self._head_text.append(buf[pos:eol].decode("utf-8"))
                pos = eol + 1
                continue
            self._end_headers_line(req)
            msg = buf[pm.end() : eol]
            if msg.startswith(b"URL:"):
                if req.url is None:
                    req.url = self._book.url(msg[5:] if msg[4:5] == b" " else msg[4:])
            elif msg.startswith(b"Headers:"):
                self._head_text = [msg[8:].decode("utf-8")]
            elif msg.startswith(b"Authorization:"):
                self._header_value(req, msg[14:].decode("utf-8"))
            elif not msg.startswith(b"Method:"):
                break
            pos = eol + 1
        else:
            return pos
        self._end_head()
        return pos

    def _end_head(self) -> None:
        req, self._head = self._head, None
        if req is None:
            return
        self._end_headers_line(req)
        api = api_key(req)
        self.requests_by_api[api] = self.requests_by_api.get(api, 0) + 1
        self._pairing.finished(req)

    def _end_headers_line(self, req: PendingRequest) -> None:
        if self._head_text is not None:
            text, self._head_text = "\n".join(self._head_text), None
            req.headers_seen = True
            m = _AUTH_IN_HEADERS.search(text)
            if m is not None:
                self._header_value(req, m.group(1))

    def _header_value(self, req: PendingRequest, value: str) -> None:
        """An Authorization header value; the first one of a request counts."""
        req.headers_seen = True
        if req.auth is None:
            req.auth = self._book.header(value)

    def _walk_response(self, buf: bytes, pos: int, out: list[Exchange]) -> int:
        """Read the open response line by line until it completes or the buffer ends."""
        size = len(buf)
        prefix = _PREFIX.match
        while pos < size and (o := self._open) is not None:
            eol = buf.find(b"\n", pos)
            pm = prefix(buf, pos)
            if pm is None:  # a continuation line: part of the body, if one has started
                if o.body is not None:
                    line = buf[pos:eol].decode("utf-8")
                    o.add_body_line(line)
                    if o.closer is not None and line.rstrip(" \t") == o.closer:
                        self._close(out, complete=True)
                pos = eol + 1
                continue
            msg = buf[pm.end() : eol]
            if o.body is None:
                sm = None if o.status_seen else _STATUS.fullmatch(msg)
                if sm is not None:
                    o.status_seen = True
                    value = sm.group(1).strip(b" \t")
                    o.status = int(value) if value.isdigit() else None
                    o.keep_body = o.status is None or not 200 <= o.status < 300
                    pos = eol + 1
                    continue
                if msg.startswith(b"Body:"):
                    self._start_body(o, msg[6:] if msg.startswith(b"Body: ") else msg[5:], out)
                    pos = eol + 1
                    continue
            self._close(out)  # any other record ends the response; the line is read again above
            return pos
        return pos

    def _start_body(self, o: _Open, first: bytes, out: list[Exchange]) -> None:
        line = first.decode("utf-8")
        o.body = []
        o.add_body_line(line)
        o.closer = _CLOSERS.get(line.lstrip()[:1])
        if o.closer is not None and line.rstrip(" \t").endswith(o.closer):
            try:
                json.loads(line)
            except ValueError:
                return
            self._close(out, complete=True)

    def _close(self, out: list[Exchange], complete: bool = False) -> None:
        o = self._open
        assert o is not None
        self._open = None
        if o.closer is not None and not complete:
            self.stats.truncated_bodies += 1
        body = "" if not o.keep_body or o.body is None else redact("\n".join(o.body))[:MAX_BODY_CHARS]
        self._emit(o.at, o.event, o.status, body, out)

    def _emit(self, at: datetime, event: str, status: int | None, body: str, out: list[Exchange]) -> None:
        request = self._pairing.take(event)
        if status is None:
            self.stats.responses_without_status += 1
        key = b"none" if status is None else str(status).encode("ascii")
        self._by_status[key] = self._by_status.get(key, 0) + 1
        out.append(new_exchange(at, event, status, body, request, self.source))

    # ---- jsonl and regex ---------------------------------------------------------------------------
    def _feed_records(self, buf: bytes, out: list[Exchange]) -> None:
        assert self._lines is not None
        read = self._lines.read
        for raw in buf.decode("utf-8").split("\n")[:-1]:
            line = raw.strip()
            if not line:
                continue
            record = read(line)
            if record is None:
                continue
            at, status, url, event, reason = record
            request = None
            if url:
                fields = self._book.url(url.encode("utf-8"))
                req = PendingRequest(at, event, "")
                req.url = fields
                request = build_request(req)
                self.requests_by_api[fields[0].value] = self.requests_by_api.get(fields[0].value, 0) + 1
            key = str(status).encode("ascii")
            self._by_status[key] = self._by_status.get(key, 0) + 1
            body = "" if 200 <= status < 300 else redact(reason)[:MAX_BODY_CHARS]
            out.append(new_exchange(at, event, status, body, request, self.source))

