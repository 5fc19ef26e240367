"""The backend format's record lines and block parts: the prefix (with an optional process id), status codes,
one-line JSON, a response whose parts are still being read, and a process's open blocks."""

from __future__ import annotations

import json
import re
from collections import deque
from datetime import datetime

from snapwatch.ingest.pairing import Key
from snapwatch.ingest.shapes import PendingRequest

MAX_BODY_CHARS = 65536  # the raw body kept for diagnosis is cut here
MAX_PAYLOAD_CHARS = 8192  # of a payload, only its pixel_id is read, in its first characters

# A record line: "YYYY-mm-dd HH:MM:SS[,ms] - [PID - ]LEVEL - message", the optional process id written
# "[12345]" (%(process)d in brackets) or "pid=12345". Anything else continues the record above it.
PREFIX = (
    rb"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(?:,[0-9]+)? - "
    rb"(?:(?:\[(?=[0-9]+\] - )|pid=(?=[0-9]+ - ))([0-9]{1,10})\]? - )?[A-Za-z]+ -(?: |(?=\n))"
)
PREFIX_MATCH = re.compile(PREFIX).match
OUT, IN = b"[OUT] OUTGOING REQUEST - ", b"[IN] INCOMING RESPONSE - "
STATUS = re.compile(rb"(?:HTTP )?Status Code:(.*)")
AUTH_IN_HEADERS = re.compile(r"""(?i)authorization['"]?\s*[:=]\s*['"]?([^'",}]*)""")
CLOSERS = {"{": "}", "[": "]"}


def status_of(digits: bytes) -> int | None:
    """A logged status code: exactly three ASCII digits, else None (the response counts as without status)."""
    value = digits.strip(b" \t")
    return int(value) if len(value) == 3 and value.isdigit() and value.isascii() else None


def looks_unrecognized(line: bytes) -> bool:
    """A line that holds a request or response header but no record prefix snapwatch reads (another log
    format), wherever it stands: counted, so a log in an unknown format never reads as silently empty.
    Indented or quoted text (inside a JSON body or payload) does not count."""
    return line[:1] not in b' \t"' and (OUT in line or IN in line) and PREFIX_MATCH(line) is None


def complete_json(text: str) -> bool | None:
    """Whether one line of JSON is whole: True, False (cut), None (too deeply nested to read)."""
    try:
        json.loads(text)
    except RecursionError:
        return None
    except ValueError:
        return False
    return True


class OpenResponse:
    """A response whose status or body may still come."""

    __slots__ = ("at", "body", "body_chars", "closer", "done", "event", "keep_body", "key", "start", "status",
                 "status_seen")

    def __init__(self, at: datetime, event: str, key: Key, start: int) -> None:
        self.at, self.event, self.key, self.start = at, event, key, start
        self.status: int | None = None
        self.status_seen = False
        self.body: list[str] | None = None  # None until the Body line
        self.body_chars = 0
        self.closer: str | None = None  # "}" or "]" when the body is JSON
        self.keep_body = True
        self.done = False

    def add_body_line(self, line: str) -> None:
        assert self.body is not None
        if self.keep_body and self.body_chars <= MAX_BODY_CHARS:
            self.body.append(line)
            self.body_chars += len(line) + 1


Block = OpenResponse | PendingRequest


class Lane:
    """One process's open blocks (all of them when the log names no process), oldest first, and the block
    its previous record line belonged to: a part goes there when it can, else to the oldest that can take it."""

    __slots__ = ("last", "requests", "responses")

    def __init__(self) -> None:
        self.last: Block | None = None
        self.requests: deque[PendingRequest] = deque()
        self.responses: deque[OpenResponse] = deque()
