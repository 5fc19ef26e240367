"""Log lines → log records → exchanges, for the built-in backend format, JSON lines and custom regex."""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass, fields
from datetime import UTC, datetime, tzinfo
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from snapwatch.config import SourceConfig
from snapwatch.errors import ConfigError
from snapwatch.model import Api, Exchange, ParseStats, Placement, Request, Response, TokenKind
from snapwatch.tokens import TokenReport, fingerprint, inspect, normalize

MAX_BODY_CHARS = 65536  # the raw body kept for diagnosis is cut here
MAX_QUEUED_REQUESTS = 1024  # unanswered requests kept per event name
MAX_EVENT_NAMES = 1024
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

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
_UrlFields = tuple[Api, str, str | None, str | None, TokenKind | None]  # api, path, pixel, token fp, kind
_RequestFields = tuple[Api, str, str | None, Placement, str | None, TokenKind | None]



# ---- building the shared shapes cheaply --------------------------------------------------------------
# A frozen dataclass's generated __init__ sets every field through object.__setattr__, and a scan builds
# a Request, a Response and an Exchange per logged exchange: that was a fifth of the hot loop's time.
# These factories make the very same objects (same class, equal and hashable as before) by filling the
# slots through their descriptors, 40% cheaper. Should a class gain a field or a __post_init__, its
# factory falls back to the plain constructor, which stays correct, only slower.
_new = object.__new__


def _slot_setters(cls: type, names: tuple[str, ...]) -> tuple[Any, ...] | None:
    if tuple(f.name for f in fields(cls)) != names or hasattr(cls, "__post_init__"):
        return None
    return tuple(getattr(cls, name).__set__ for name in names)


_REQUEST_SETTERS = _slot_setters(
    Request, ("at", "event", "api", "path", "pixel", "placement", "token_fp", "token_kind")
)
_RESPONSE_SETTERS = _slot_setters(Response, ("at", "event", "status", "body"))
_EXCHANGE_SETTERS = _slot_setters(Exchange, ("response", "request", "source"))


def _request(at: datetime, event: str, f: _RequestFields) -> Request:
    """``Request(at, event, *f)``."""
    if _REQUEST_SETTERS is None:
        return Request(at, event, *f)
    s_at, s_event, s_api, s_path, s_pixel, s_placement, s_fp, s_kind = _REQUEST_SETTERS
    req: Request = _new(Request)
    s_at(req, at)
    s_event(req, event)
    s_api(req, f[0])
    s_path(req, f[1])
    s_pixel(req, f[2])
    s_placement(req, f[3])
    s_fp(req, f[4])
    s_kind(req, f[5])
    return req


def _exchange(at: datetime, event: str, status: int | None, body: str, request: Request | None,
              source: str) -> Exchange:
    """``Exchange(Response(at, event, status, body), request, source)``."""
    if _RESPONSE_SETTERS is None or _EXCHANGE_SETTERS is None:
        return Exchange(Response(at, event, status, body), request, source)
    s_at, s_event, s_status, s_body = _RESPONSE_SETTERS
    s_response, s_request, s_source = _EXCHANGE_SETTERS
    resp: Response = _new(Response)
    s_at(resp, at)
    s_event(resp, event)
    s_status(resp, status)
    s_body(resp, body)
    ex: Exchange = _new(Exchange)
    s_response(ex, resp)
    s_request(ex, request)
    s_source(ex, source)
    return ex

@dataclass(frozen=True, slots=True)
class BodyFields:
    """What a response body says, as far as diagnosis needs it.

    ``text`` is the raw text when the body is not JSON, or a JSON wrapper's ``"text"`` string.
    ``record_reasons`` are the reasons of v2 ``error_records``.
    """

    is_json: bool
    status: str | None = None
    reason: str | None = None
    codes: tuple[str, ...] = ()
    error_msgs: tuple[str, ...] = ()
    record_reasons: tuple[str, ...] = ()
    text: str | None = None


def _strings(value: object) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v) for v in value if v is not None)
    return () if value is None else (str(value),)


def body_fields(body: str) -> BodyFields:
    """Read a raw response body (JSON when it is JSON, text otherwise). Pure; never raises."""
    stripped = body.strip()
    try:
        data = json.loads(stripped) if stripped[:1] in ("{", "[") else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        if data is not None:
            return BodyFields(is_json=True)
        return BodyFields(is_json=False, text=stripped or None)
    errors = data.get("errors")
    errors = errors if isinstance(errors, dict) else {}
    records = data.get("error_records")
    reasons = tuple(
        str(r["reason"]) for r in records if isinstance(r, dict) and r.get("reason") is not None
    ) if isinstance(records, list) else ()
    text = data.get("text")
    return BodyFields(
        is_json=True,
        status=None if data.get("status") is None else str(data["status"]),
        reason=None if data.get("reason") is None else str(data["reason"]),
        codes=_strings(errors.get("codes")),
        error_msgs=_strings(errors.get("error_msgs")),
        record_reasons=reasons,
        text=text if isinstance(text, str) else None,
    )


def _zone(name: str) -> tzinfo | None:
    """None stands for the machine's local zone (resolved per timestamp, so DST is honoured)."""
    if name == "local":
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"sources: timezone: unknown time zone {name!r}") from exc


def _masked(value: str) -> bool:
    return not value or "*" in value or "…" in value or "..." in value


class _Pending:
    """A request waiting for its response: mutable while its block is still being read."""

    __slots__ = ("api_hint", "at", "auth", "event", "headers_seen", "url")

    def __init__(self, at: datetime, event: str, api_hint: str) -> None:
        self.at, self.event, self.api_hint = at, event, api_hint
        self.url: _UrlFields | None = None
        self.auth: tuple[str | None, TokenKind | None] | None = None  # Authorization header seen
        self.headers_seen = False


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
        self.tokens: dict[str, TokenKind] = {}
        self.token_reports: dict[str, TokenReport] = {}  # fingerprint → what the token is (no token inside)
        self.tokens_in_log = False
        self.held_bytes = 0
        self.requests_by_api: dict[str, int] = {}  # api value → requests (cumulative)
        self._by_status: dict[bytes, int] = {}  # status digits or b"none" → responses (cumulative)
        self._zone = _zone(config.timezone)
        self._fields = config.fields
        self._pattern: re.Pattern[str] | None = None
        if config.format == "regex":
            self._pattern = _compile_pattern(config.pattern)
        self._times: dict[bytes, datetime] = {}
        self._last_at = _EPOCH
        self._url_cache: dict[bytes, _UrlFields] = {}
        self._queues: dict[str, deque[Request | _Pending]] = {}
        self._heads: dict[bytes, tuple[str, str]] = {}
        self._requests: dict[tuple[str, bytes | None], tuple[str, _RequestFields]] = {}
        self._head: _Pending | None = None  # the request whose head lines are being read
        self._head_text: list[str] | None = None  # a Headers line and its continuation lines
        self._open: _Open | None = None

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
        buf = self._clean(lines)
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
            self.held_bytes = len(lines) - (start if buf is lines else _original_offset(lines, buf, start))
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
            self.stats.unpaired_requests += sum(len(q) for q in self._queues.values())
            self._queues.clear()
        return out

    def _clean(self, data: bytes) -> bytes:
        # NUL first, then CRLF, then UTF-8: the same order a line-by-line reader would apply.
        if b"\0" in data:
            i = data.find(b"\0")
            while i >= 0:
                self.stats.nul_bytes += 1
                eol = data.find(b"\n", i)
                i = -1 if eol < 0 else data.find(b"\0", eol)
            data = data.replace(b"\0", b"")
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        if not data.isascii():
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                lines = data.split(b"\n")
                for i, line in enumerate(lines):
                    try:
                        line.decode("utf-8")
                    except UnicodeDecodeError:
                        self.stats.invalid_utf8 += 1
                        lines[i] = line.decode("utf-8", "replace").encode("utf-8")
                data = b"\n".join(lines)
        return data

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
        times, heads, requests = self._times, self._heads, self._requests
        queues, source, by_status, api_count = self._queues, self.source, self._by_status, self.requests_by_api
        last_url: bytes | None = None
        last_hint = api = ""
        fields: _RequestFields | None = None
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
            at = self._last_at = times.get(prefix) or self._time(prefix)
            event, hint = heads.get(rest) or self._header_rest(rest)
            if outgoing:
                queue = queues.get(event)
                if queue is None or len(queue) >= MAX_QUEUED_REQUESTS:
                    queue = self._make_room(event)
                if url is None:  # not the usual head: read it line by line
                    self._head = _Pending(at, event, hint)
                    queue.append(self._head)
                    pos = self._walk_head(buf, pos)
                    if self._head is not None:
                        return -1
                    continue
                if url != last_url or hint != last_hint or fields is None:
                    last_url, last_hint = url, hint
                    api, fields = requests.get((hint, url)) or self._request_fields((hint, url))
                api_count[api] += 1
                queue.append(_request(at, event, fields))
                continue
            if status_b is None:
                self._open = _Open(at, event)
                pos = self._walk_response(buf, pos, out)
                if self._open is not None:
                    return line_start
                continue
            by_status[status_b] = by_status.get(status_b, 0) + 1
            queue = queues.get(event)
            request: Request | None = None
            if queue:
                head = queue.popleft()
                request = _build_request(head) if isinstance(head, _Pending) else head
            else:
                self.stats.unpaired_responses += 1
            status = int(status_b)
            text = "" if 200 <= status < 300 else body.decode("utf-8")[:MAX_BODY_CHARS]
            out.append(_exchange(at, event, status, text, request, source))

    def _header_rest(self, rest: bytes) -> tuple[str, str]:
        m = _HEADER_REST.fullmatch(rest.decode("utf-8"))
        assert m is not None  # every group is optional
        parsed = (m.group(1), (m.group(2) or "").strip().lower())
        if len(self._heads) >= 256:
            self._heads.clear()
        self._heads[rest] = parsed
        return parsed

    def _request_fields(self, key: tuple[str, bytes | None]) -> tuple[str, _RequestFields]:
        hint, url = key
        req = _Pending(_EPOCH, "", hint)
        if url is not None:
            req.url = self._url(url)
        built = _build_request(req)
        value = (_api_key(req), (built.api, built.path, built.pixel, built.placement, built.token_fp, built.token_kind))
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
                    req.url = self._url(msg[5:] if msg[4:5] == b" " else msg[4:])
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
        api = _api_key(req)
        self.requests_by_api[api] = self.requests_by_api.get(api, 0) + 1
        queue = self._queues.get(req.event)
        if queue and queue[-1] is req:
            queue[-1] = _build_request(req)

    def _end_headers_line(self, req: _Pending) -> None:
        if self._head_text is not None:
            text, self._head_text = "\n".join(self._head_text), None
            req.headers_seen = True
            m = _AUTH_IN_HEADERS.search(text)
            if m is not None:
                self._header_value(req, m.group(1))

    def _header_value(self, req: _Pending, value: str) -> None:
        """An Authorization header value; the first one of a request counts."""
        req.headers_seen = True
        if req.auth is None:
            value = value.strip()
            req.auth = (None, None) if _masked(normalize(value)) else self._token(value)

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
        body = "" if not o.keep_body or o.body is None else "\n".join(o.body)[:MAX_BODY_CHARS]
        self._emit(o.at, o.event, o.status, body, out)

    def _make_room(self, event: str) -> deque[Request | _Pending]:
        """The queue for ``event``, with room for one more request (the oldest unanswered one goes)."""
        queue = self._queues.get(event)
        if queue is None:
            if len(self._queues) >= MAX_EVENT_NAMES:
                oldest = next(iter(self._queues))
                self.stats.unpaired_requests += len(self._queues.pop(oldest))
            queue = self._queues[event] = deque()
        if len(queue) >= MAX_QUEUED_REQUESTS:
            queue.popleft()
            self.stats.unpaired_requests += 1
        return queue

    def _emit(self, at: datetime, event: str, status: int | None, body: str, out: list[Exchange]) -> None:
        queue = self._queues.get(event)
        request = None
        if queue:
            head = queue.popleft()
            request = _build_request(head) if isinstance(head, _Pending) else head
        if request is None:
            self.stats.unpaired_responses += 1
        if status is None:
            self.stats.responses_without_status += 1
        key = b"none" if status is None else str(status).encode("ascii")
        self._by_status[key] = self._by_status.get(key, 0) + 1
        out.append(_exchange(at, event, status, body, request, self.source))

    # ---- shared field readers ----------------------------------------------------------------------
    def _time(self, stamp: bytes) -> datetime:
        """The time of a record line from its prefix (its first 19 bytes are the timestamp); a stamp
        that does not parse counts and reuses the last good one."""
        at = self._times.get(stamp)
        if at is None:
            at = self._parse_stamp(stamp)
            if at is None:
                self.stats.bad_timestamps += 1
                return self._last_at
            if len(self._times) >= 4096:
                self._times.clear()
            self._times[stamp] = at
        self._last_at = at
        return at

    def _parse_stamp(self, s: bytes) -> datetime | None:
        # The zone goes straight into the constructor: datetime.replace costs as much as building anew.
        try:
            at = datetime(int(s[0:4]), int(s[5:7]), int(s[8:10]), int(s[11:13]), int(s[14:16]), int(s[17:19]), 0,
                          self._zone)
        except ValueError:
            return None
        return at.astimezone() if self._zone is None else at

    def _token(self, raw: str) -> tuple[str | None, TokenKind | None]:
        if not normalize(raw):
            return None, None
        fp = fingerprint(raw)
        kind = self.tokens.get(fp)
        if kind is None:  # first sight of this token: inspect it once (claims, defects; never the token)
            report = self.token_reports[fp] = inspect(raw)
            kind = self.tokens[fp] = report.kind
        self.tokens_in_log = True
        return fp, kind

    def _url(self, raw: bytes) -> _UrlFields:
        # Keyed by the URL as logged (it holds the token): private, a handful of entries, never shown.
        hit = self._url_cache.get(raw)
        if hit is not None:
            return hit
        url = raw.decode("utf-8").strip()
        try:
            parts = urlsplit(url)
            path, query = parts.path, parts.query
        except ValueError:
            path, query = url.partition("?")[0], url.partition("?")[2]
        api = Api.V3 if path.startswith("/v3/") else Api.V2 if path.startswith("/v2/") else Api.UNKNOWN
        segments = path.split("/")
        pixel = segments[2] or None if api is Api.V3 and len(segments) > 2 else None
        token: tuple[str | None, TokenKind | None] = (None, None)
        for item in query.split("&"):
            key, _, value = item.partition("=")
            if unquote(key) == "access_token":
                token = self._token(unquote(value))
                break
        fields = (api, path, pixel, *token)
        if len(self._url_cache) >= 16:
            self._url_cache.clear()
        self._url_cache[raw] = fields
        return fields

    # ---- jsonl and regex ---------------------------------------------------------------------------
    def _feed_records(self, buf: bytes, out: list[Exchange]) -> None:
        for raw in buf.decode("utf-8").split("\n")[:-1]:
            line = raw.strip()
            if not line:
                continue
            record = self._read_record(line)
            if record is None:
                continue
            at, status, url, event, reason = record
            request = None
            if url:
                fields = self._url(url.encode("utf-8"))
                req = _Pending(at, event, "")
                req.url = fields
                request = _build_request(req)
                self.requests_by_api[fields[0].value] = self.requests_by_api.get(fields[0].value, 0) + 1
            key = str(status).encode("ascii")
            self._by_status[key] = self._by_status.get(key, 0) + 1
            body = "" if 200 <= status < 300 else reason[:MAX_BODY_CHARS]
            out.append(_exchange(at, event, status, body, request, self.source))

    def _read_record(self, line: str) -> tuple[datetime, int, str, str, str] | None:
        if self._pattern is not None:
            m = self._pattern.search(line)
            if m is None:
                self.stats.extra["unmatched_lines"] = self.stats.extra.get("unmatched_lines", 0) + 1
                return None
            values: dict[str, object] = {k: v for k, v in m.groupdict().items() if v is not None}
            names = ("ts", "status", "url", "event", "reason")
        else:
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            if not isinstance(obj, dict):
                self.stats.malformed_records += 1
                return None
            values = obj
            f = self._fields
            names = (f.ts, f.status, f.url, f.event, f.reason)
        status = _int(values.get(names[1]))
        if status is None:
            self.stats.malformed_records += 1
            return None
        at = self._any_time(values.get(names[0]))
        url, event, reason = (values.get(n) for n in names[2:])
        return (
            at,
            status,
            url if isinstance(url, str) else "",
            "" if event is None else str(event),
            "" if reason is None else reason if isinstance(reason, str) else json.dumps(reason),
        )

    def _any_time(self, value: object) -> datetime:
        at: datetime | None = None
        epoch = value if isinstance(value, int | float) and not isinstance(value, bool) else None
        if isinstance(value, str):
            text = value.strip()
            try:
                epoch = float(text)
            except ValueError:
                try:
                    at = datetime.fromisoformat(text.replace(",", "."))
                except ValueError:
                    at = None
                else:
                    if at.tzinfo is None:
                        at = at.astimezone() if self._zone is None else at.replace(tzinfo=self._zone)
        if epoch is not None:
            try:
                at = datetime.fromtimestamp(epoch, self._zone or UTC)
            except (ValueError, OverflowError, OSError):
                at = None
            else:
                at = at.astimezone() if self._zone is None else at
        if at is None:
            self.stats.bad_timestamps += 1
            return self._last_at
        self._last_at = at
        return at


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _compile_pattern(pattern: str | None) -> re.Pattern[str]:
    if not pattern:
        raise ConfigError("sources: pattern: the regex format needs a pattern")
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"sources: pattern: not a valid regular expression: {exc}") from exc
    missing = {"ts", "status"} - set(compiled.groupindex)
    if missing:
        raise ConfigError(f"sources: pattern: needs the named groups {', '.join(sorted(missing))}")
    return compiled


def _api_key(req: _Pending) -> str:
    if req.url is not None and req.url[0] is not Api.UNKNOWN:
        return req.url[0].value
    return req.api_hint if req.api_hint in ("v2", "v3") else "unknown"


def _build_request(req: _Pending) -> Request:
    if req.url is not None:
        api, path, pixel, fp, kind = req.url
    else:
        api, path, pixel, fp, kind = Api.UNKNOWN, "", None, None, None
    if api is Api.UNKNOWN and req.api_hint in ("v2", "v3"):
        api = Api(req.api_hint)
    if fp is not None:
        placement = Placement.QUERY
    elif req.auth is not None:
        placement = Placement.HEADER
        fp, kind = req.auth
    elif req.headers_seen or api is Api.V3:
        placement = Placement.NONE
    else:
        placement = Placement.UNKNOWN
    return _request(req.at, req.event, (api, path, pixel, placement, fp, kind))


def _original_offset(original: bytes, cleaned: bytes, pos: int) -> int:
    """Where the line starting at ``cleaned[pos]`` starts in ``original`` (cleaning keeps lines 1:1)."""
    offset = 0
    for _ in range(cleaned.count(b"\n", 0, pos)):
        offset = original.find(b"\n", offset) + 1
    return offset
