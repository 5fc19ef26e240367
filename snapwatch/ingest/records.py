"""Log lines → log records → exchanges: the built-in backend format's multi-line blocks, and the pairing shared
with the one-line formats (JSON lines, custom regex: ``lineformats``)."""

from __future__ import annotations

import re

from snapwatch.config.models import SourceConfig
from snapwatch.ingest.blocks import Blocks
from snapwatch.ingest.lineformats import LineReader
from snapwatch.ingest.pairing import MAX_QUEUED_REQUESTS, Pairing
from snapwatch.ingest.parts import MAX_BODY_CHARS, MAX_PAYLOAD_CHARS, PREFIX, looks_unrecognized
from snapwatch.ingest.rawtext import clean, original_offset
from snapwatch.ingest.shapes import (
    PendingRequest,
    RequestFields,
    TokenBook,
    api_key,
    build_request,
    new_exchange,
    new_request,
    payload_pixel,
)
from snapwatch.ingest.stamps import EPOCH, Stamps, zone_of
from snapwatch.model import Exchange, ParseStats, Request
from snapwatch.redact import redact

# Every body kept (only non-2xx ones are) goes through ``redact`` first: a backend's error wrapper may quote
# the request URL, token and all, and kept bodies reach evidence, alerts and the state file.

# Searched over whole buffers: its literal first byte lets the regex engine skip most of the text.
# Every header line holds "ING RE" (OUTGOING REQUEST, INCOMING RESPONSE): a literal search locates the
# few candidates (a compiled literal pattern's search: a sixth faster than bytes.find on these logs,
# measured), then one anchored match reads the whole block head: the header line and, when they
# follow at once, the request's URL line or the response's status line and pretty JSON body
# (closed by "}" at column 0).
_MARK = b"ING RE"
_MARK_SEARCH = re.compile(re.escape(_MARK)).search
# The lines after a header are matched against the header's own prefix (group 1, the process id in
# group 2 when the format has one): the common block, written by consecutive logging calls within one
# second, matches in one go; any other shape (a new second, another level, extra head lines, another
# process's lines in between) fails here and is read line by line instead (``blocks``).
# Request: URL, optional Method, then Payload. Response: a three-digit status, then a pretty JSON body
# closed by "}" at column 0. Groups: prefix, pid, OUT, the rest of the header line, url, status, body.
_BLOCK = re.compile(
    rb"(" + PREFIX + rb")\[(?:(OUT)\] OUTGOING REQUEST|IN\] INCOMING RESPONSE) - ([^\n]*)\n"
    rb"(?(3)(?:\1URL: ?([^\n]*)\n(?:\1Method:[^\n]*\n)?(?=\1Payload:)|)"
    rb"|(?:\1(?:HTTP )?Status Code:[ \t]*([0-9]{3})[ \t]*\n\1Body: (\{\n(?:[ \t][^\n]*\n)*\}[ \t]*)\n)?)"
)
# A v2 request's payload right after its head (the v2 URL names no pixel; the payload's pixel_id does).
_PAYLOAD = re.compile(rb"(" + PREFIX + rb")Payload:[ \t]*\n(" + PREFIX + rb")(\{\n(?:[ \t][^\n]*\n)*\})[ \t]*\n")
# The rest of a header line: the event name runs to " Event", " (" or the end (it may hold spaces).
_HEADER_REST = re.compile(r"(.*?)(?: Event)?(?: \(([^)]*)\))?[ \t]*")


class Assembler:
    """Turns one source's whole lines into exchanges; keeps what a later line may still complete.

    ``held_bytes`` is how many of the bytes fed so far belong to a response not yet emitted, so a
    checkpoint at ``fed_offset - held_bytes`` neither repeats nor loses it. ``tokens`` maps the
    fingerprint of every token seen in requests to its kind; the tokens themselves are not kept.
    ``stats.long_lines`` belongs to the LineSplitter feeding this assembler and is left to its owner;
    ``stats.lines`` is not counted (counting every newline costs a tenth of the scan time). A record
    whose reading fails is skipped and counted (``stats.poison_records``): nothing in a log stops it.
    ``interleaved`` counts block parts found after other blocks' lines (several processes, no process
    id in the format).
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
        self._pairing = Pairing(self.stats, config.pairing_timeout)
        self._heads: dict[bytes, tuple[str, str]] = {}
        self._requests: dict[tuple[str, bytes | None], tuple[str, RequestFields]] = {}
        self._blocks = Blocks(self.stats, self._book, self._pairing, self._stamps, self._header_rest,
                              self._by_status, self.requests_by_api, source)

    @property
    def tokens_in_log(self) -> bool:
        """Whether any request so far carried a token."""
        return self._book.in_log

    @property
    def requests(self) -> int:
        """Requests seen so far."""
        return sum(self.requests_by_api.values()) + self._blocks.open_requests

    @property
    def interleaved(self) -> int:
        return self._blocks.interleaved

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
        blocks = self._blocks
        held_before = self.held_bytes if blocks.held_start() is not None else 0
        blocks.new_buffer()
        self._feed_backend(buf, out)
        start = blocks.held_start()
        if start is None:
            self.held_bytes = 0
        elif start < 0:
            self.held_bytes = held_before + len(lines)
        else:
            self.held_bytes = len(lines) - (start if buf is lines else original_offset(lines, buf, start))
        self._pairing.expire(self._stamps.last_at)
        return out

    def flush(self, *, end_of_input: bool = True) -> list[Exchange]:
        """Emit the responses still open. At the end of input, requests never answered are counted too;
        a follower's quiet flush (``end_of_input=False``) keeps them waiting for their responses."""
        out: list[Exchange] = []
        try:
            self._blocks.close_all(out)
        except Exception:  # any failure of one record: counted, never fatal
            self.stats.poison_records += 1
            self._blocks.forget()
        self.held_bytes = 0
        if end_of_input:
            self._pairing.end_of_input()
        return out

    # ---- the backend format ------------------------------------------------------------------------
    def _feed_backend(self, buf: bytes, out: list[Exchange]) -> None:
        """Parse ``buf``; a record whose reading fails is counted and skipped, the rest goes on."""
        pos = self._blocks.mark = 0
        while True:
            try:
                self._scan(buf, pos, out)
                return
            except Exception:  # any failure of one record: counted, never fatal
                self.stats.poison_records += 1
                self._blocks.drop_cont()
                eol = buf.find(b"\n", max(pos, self._blocks.mark))  # the line it failed on is skipped
                pos = len(buf) if eol < 0 else eol + 1

    def _scan(self, buf: bytes, pos: int, out: list[Exchange]) -> None:  # noqa: PLR0915 (one hot loop, inlined on purpose)
        blocks = self._blocks
        if not blocks.idle:
            pos = blocks.walk(buf, pos, out)
            if not blocks.idle:
                return
        # The hot loop: one search and one anchored match per block, everything bound to locals.
        match, rfind, find, mark = _BLOCK.match, buf.rfind, buf.find, _MARK_SEARCH
        stamps, heads, requests = self._stamps, self._heads, self._requests
        times, time_of, take, room_for = stamps.cache, stamps.time, self._pairing.take, self._pairing.room_for
        queues, seen, first_seen = self._pairing.queues, self._pairing.last_seen, self._pairing.first_seen
        source, by_status, api_count = self.source, self._by_status, self.requests_by_api
        timeout, cut_at, cutoff = self._pairing.timeout, EPOCH, EPOCH
        last_url: bytes | None = None
        last_hint = api = ""
        fields: RequestFields | None = None
        while True:
            found = mark(buf, pos)
            if found is None:
                return
            i = found.start()
            line_start = blocks.mark = rfind(b"\n", 0, i) + 1
            m = match(buf, line_start)
            if m is None:
                pos = find(b"\n", i) + 1
                if looks_unrecognized(buf[line_start:pos - 1]):
                    self.stats.unrecognized_lines += 1
                continue  # otherwise header-like text inside a payload or body, not a record of its own
            pos = m.end()
            prefix, pid, outgoing, rest, url, status_b, body = m.groups()
            at = stamps.last_at = times.get(prefix) or time_of(prefix)
            event, hint = heads.get(rest) or self._header_rest(rest)
            key = event if pid is None else (pid, event)
            if outgoing:
                if url is None:  # not the usual head: read it line by line
                    blocks.request(at, pid, key, event, hint)
                else:
                    if url != last_url or hint != last_hint or fields is None:
                        last_url, last_hint = url, hint
                        api, fields = requests.get((hint, url)) or self._request_fields((hint, url))
                        if fields[4] not in first_seen:  # a token first sent now
                            first_seen[fields[4]] = at
                    if api != "v2":  # v3 names its pixel in the URL
                        api_count[api] += 1
                        seen[fields[4]] = at
                        queue = queues.get(key)
                        if queue is None or len(queue) >= MAX_QUEUED_REQUESTS:
                            queue = room_for(key)
                        queue.append(new_request(at, event, fields))
                        continue
                    # v2 names its pixel in the payload: read at once when it follows, else line by line
                    pm = _PAYLOAD.match(buf, pos)
                    if pm is not None and pm.group(1) == prefix == pm.group(3):
                        pixel = payload_pixel(pm.group(5).decode("utf-8")[:MAX_PAYLOAD_CHARS])
                        api_count[api] += 1
                        seen[fields[4]] = at
                        room_for(key).append(new_request(at, event, (fields[0], fields[1], pixel, *fields[3:])))
                        pos = pm.end()
                        continue
                    blocks.request(at, pid, key, event, hint, self._book.url(url))
                pos = blocks.walk(buf, pos, out)
                if not blocks.idle:
                    return
                continue
            if status_b is None:
                blocks.response(at, pid, key, event, line_start, out)
                pos = blocks.walk(buf, pos, out)
                if not blocks.idle:
                    return
                continue
            queue = queues.get(key)
            request: Request | None
            if queue is not None and len(queue) == 1 and isinstance(head := queue[0], Request):
                # the common case, inlined: one call of the event in flight, not waiting too long
                if at is not cut_at:
                    cut_at, cutoff = at, at - timeout
                if head.at >= cutoff:
                    queue.pop()
                    request = head
                else:
                    request = take(key, at)
            else:
                request = take(key, at)
            status = int(status_b)
            text = "" if 200 <= status < 300 else redact(body.decode("utf-8"))[:MAX_BODY_CHARS]
            by_status[status_b] = by_status.get(status_b, 0) + 1
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

    # ---- jsonl and regex ---------------------------------------------------------------------------
    def _feed_records(self, buf: bytes, out: list[Exchange]) -> None:
        assert self._lines is not None
        read = self._lines.read
        for raw in buf.decode("utf-8").split("\n")[:-1]:
            line = raw.strip()
            if not line:
                continue
            try:
                record = read(line)
            except Exception:  # any failure of one record: counted, never fatal
                self.stats.poison_records += 1
                continue
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

