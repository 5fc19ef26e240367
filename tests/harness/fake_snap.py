"""A fake Snap Conversions API server on loopback that keeps its own tally of what it answered.

Endpoints (HTTP/1.1, keep-alive, one thread per connection):

- ``POST /v3/{pixel}/events?access_token=T``: the token in the query (v3).
- ``POST /v2/conversion`` with ``Authorization: Bearer T``: the token in a header (v2).
- ``GET /_tally``: the tally as it stands, as JSON (``Tally.to_json`` and ``in_flight``: requests not yet
  answered; the tally is final when it is 0).

What it answers is decided per token: an accepted token gets 200 (v3 ``VALID``, v2 ``SUCCESS``), any
other token 401. ``revoke`` turns an accepted token into a rejected one at runtime, ``revoke_after``
does it by itself once the token has been answered that many times (so a streak starts mid-run
without the test racing the backend). ``error_every`` answers every n-th request of an accepted token
with 429, 500 or 400 instead (counted per status, so the shares are exact by construction).
``delay_every`` holds every n-th request of a token for ``delay`` seconds before answering.

The tally counts every response the server wrote, per (status, token fingerprint), as ``sent``. A
response written more than ``client_timeout`` seconds after its request was read, or whose write
failed, is also counted as ``late``: the client had given up before it came, so the backend never
logged it. ``delay`` must exceed ``client_timeout`` by a wide margin, so a held response is always
late and a prompt one never is: ``expected()`` (sent minus late) is then exactly what the backend
logged. The harness checks that against the log itself (``Status Code:`` lines) on every run.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

NO_TOKEN = "none"  # the fingerprint key of requests that carried no token
_BEARER = re.compile(r"(?i)^bearer\s+")
_V3_PATH = re.compile(r"^/v3/([^/]+)/events$")
DELAY_MARGIN = 1.0  # seconds a held response comes after the client's deadline, at least

BODIES: dict[tuple[str, int], dict[str, object]] = {
    ("v3", 200): {"status": "VALID", "reason": "Events have been processed successfully."},
    ("v2", 200): {"status": "SUCCESS", "reason": "All records processed"},
    ("v3", 401): {"status": "UNKNOWN", "text": "Invalid access token"},
    ("v2", 401): {"status": "FAILED", "reason": "Unauthorized: invalid access token"},
    ("v3", 429): {"status": "FAILED", "reason": "Too many requests"},
    ("v2", 429): {"status": "FAILED", "reason": "Too many requests"},
    ("v3", 500): {"status": "FAILED", "reason": "Internal server error"},
    ("v2", 500): {"status": "FAILED", "reason": "Internal server error"},
    ("v3", 400): {"status": "INVALID", "reason": "event_time is too far in the past"},
    ("v2", 400): {"status": "INVALID", "reason": "timestamp is too far in the past"},
    ("v3", 404): {"status": "FAILED", "reason": "Not found"},
    ("v2", 404): {"status": "FAILED", "reason": "Not found"},
}


def normalize(raw: str) -> str:
    """The token as sent: surrounding whitespace, one pair of quotes and a leading ``Bearer `` removed."""
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1].strip()
    return _BEARER.sub("", value, count=1).strip()


def fingerprint(raw: str | None) -> str:
    """The first 12 hex digits of SHA-256 over the normalised token (``"none"`` when there is none)."""
    if raw is None or not normalize(raw):
        return NO_TOKEN
    return hashlib.sha256(normalize(raw).encode("utf-8")).hexdigest()[:12]


@dataclass
class TokenRule:
    """How the server answers one token."""

    accepted: bool = True
    revoke_after: int | None = None  # answered this many times, the token is rejected from then on
    delay_every: int = 0  # every n-th request of this token is held for ``delay`` seconds (0: never)
    answered: int = 0  # requests of this token decided so far
    held: int = 0  # of those, held past the client's deadline


@dataclass
class Tally:
    """What the server wrote back, per (status, token fingerprint); ``late`` ones came after the client gave up."""

    sent: Counter[tuple[int, str]] = field(default_factory=Counter)
    late: Counter[tuple[int, str]] = field(default_factory=Counter)
    received: Counter[str] = field(default_factory=Counter)  # requests per token fingerprint
    write_failures: int = 0

    def expected(self) -> Counter[tuple[int, str]]:
        """What the backend logged: every response sent before the client's deadline."""
        out = Counter(self.sent)
        out.subtract(self.late)
        return +out

    def expected_by_status(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for (status, _fp), n in self.expected().items():
            out[str(status)] += n
        return out

    def expected_by_token(self) -> dict[str, tuple[int, int]]:
        """Per fingerprint: (accepted, rejected) as scan counts them: 2xx, and 401/403."""
        out: dict[str, tuple[int, int]] = {}
        for (status, fp), n in self.expected().items():
            accepted, rejected = out.get(fp, (0, 0))
            if 200 <= status < 300:
                accepted += n
            elif status in (401, 403):
                rejected += n
            out[fp] = (accepted, rejected)
        return out

    def late_total(self) -> int:
        return sum(self.late.values())

    def to_json(self) -> dict[str, object]:
        def rows(counter: Counter[tuple[int, str]]) -> list[dict[str, object]]:
            return [{"status": s, "fingerprint": fp, "count": n} for (s, fp), n in sorted(counter.items())]

        return {"sent": rows(self.sent), "late": rows(self.late), "expected": rows(self.expected()),
                "received": dict(sorted(self.received.items())), "write_failures": self.write_failures}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Tally:
        def counter(key: str) -> Counter[tuple[int, str]]:
            items = data[key]
            assert isinstance(items, list)
            return Counter({(int(r["status"]), str(r["fingerprint"])): int(r["count"]) for r in items})

        received = data["received"]
        assert isinstance(received, dict)
        failures = data["write_failures"]
        assert isinstance(failures, int)
        return cls(counter("sent"), counter("late"), Counter({str(k): int(v) for k, v in received.items()}),
                   failures)


@dataclass(frozen=True)
class _Decision:
    status: int
    fp: str
    delay: float


class FakeSnap:
    """The server; start it with ``with FakeSnap(...) as snap:`` and point the backend at ``snap.base_url``."""

    def __init__(self, *, client_timeout: float, delay: float | None = None,
                 error_every: dict[int, int] | None = None) -> None:
        """``client_timeout``: the backend's HTTP timeout; a response written later than that counts as late.
        ``delay``: how long a held request waits (default: ``client_timeout`` plus a wide margin)."""
        self.client_timeout = client_timeout
        self.delay = client_timeout + DELAY_MARGIN + 0.5 if delay is None else delay
        if self.delay < client_timeout + DELAY_MARGIN:
            raise ValueError("a held response must come well after the client's deadline")
        self.error_every = dict(error_every or {})
        self._rules: dict[str, TokenRule] = {}
        self._accepted_seen = 0  # requests of accepted tokens decided so far (drives error_every)
        self._tally = Tally()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._inflight = 0
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self.port = int(self._server.server_address[1])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    # ---- configuration ---------------------------------------------------------------------------------
    def accept(self, token: str, *, revoke_after: int | None = None, delay_every: int = 0) -> None:
        """Answer ``token`` with 200 (until ``revoke_after`` answers, when given)."""
        with self._lock:
            self._rules[normalize(token)] = TokenRule(True, revoke_after, delay_every)

    def reject(self, token: str, *, delay_every: int = 0) -> None:
        """Answer ``token`` with 401."""
        with self._lock:
            self._rules[normalize(token)] = TokenRule(False, None, delay_every)

    def revoke(self, token: str) -> None:
        """From now on, answer ``token`` with 401 (Snap after the token was regenerated)."""
        with self._lock:
            self._rules.setdefault(normalize(token), TokenRule()).accepted = False

    # ---- the tally -------------------------------------------------------------------------------------
    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is being answered (held ones included); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._inflight == 0, timeout)

    def snapshot(self) -> tuple[Tally, int]:
        """A copy of the tally as it stands, and how many requests are still being answered."""
        with self._lock:
            t = self._tally
            return Tally(Counter(t.sent), Counter(t.late), Counter(t.received), t.write_failures), self._inflight

    def tally(self, settle: float | None = None) -> Tally:
        """A copy of the final tally: once every request in flight was answered, held ones included (waits
        at most ``settle`` seconds, by default long enough for a held answer)."""
        if not self.wait_idle(self.delay + 5.0 if settle is None else settle):
            raise AssertionError("the fake Snap server still has requests in flight")
        return self.snapshot()[0]

    # ---- lifecycle -------------------------------------------------------------------------------------
    def __enter__(self) -> FakeSnap:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stopping.set()  # held requests are released (and written late) right away
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    # ---- answering -------------------------------------------------------------------------------------
    def _decide(self, api: str, token: str | None) -> _Decision:
        fp = fingerprint(token)
        with self._lock:
            self._inflight += 1
            self._tally.received[fp] += 1
            rule = self._rules.get(normalize(token)) if token else None
            if rule is None:
                return _Decision(401, fp, 0.0)
            rule.answered += 1
            if rule.revoke_after is not None and rule.answered > rule.revoke_after:
                rule.accepted = False
            delay = 0.0
            if rule.delay_every and rule.answered % rule.delay_every == 0:
                rule.held += 1
                delay = self.delay
            if not rule.accepted:
                return _Decision(401, fp, delay)
            self._accepted_seen += 1
            status = 200
            for code, every in sorted(self.error_every.items()):
                if every and self._accepted_seen % every == 0:
                    status = code
                    break
            return _Decision(status, fp, delay)

    def _record(self, status: int, fp: str, elapsed: float, written: bool) -> None:
        with self._lock:
            self._tally.sent[(status, fp)] += 1
            if not written or elapsed > self.client_timeout:
                self._tally.late[(status, fp)] += 1
            if not written:
                self._tally.write_failures += 1
            self._inflight -= 1
            self._idle.notify_all()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        snap = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like Snap; httpx reuses connections

            def do_GET(self) -> None:
                if self.path != "/_tally":
                    self._write(404, BODIES[("v3", 404)])
                    return
                tally, in_flight = snap.snapshot()
                self._write(200, {**tally.to_json(), "in_flight": in_flight})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                read_at = time.monotonic()
                url = urlsplit(self.path)
                token: str | None = None
                known = True
                if _V3_PATH.match(url.path):
                    api, values = "v3", parse_qs(url.query).get("access_token")
                    token = values[0] if values else None
                elif url.path == "/v2/conversion":
                    api, token = "v2", self.headers.get("Authorization")
                else:
                    api, known = "v3", False
                decision = snap._decide(api, token)
                status = decision.status if known else 404
                if decision.delay:
                    snap._stopping.wait(decision.delay)  # the client gives up long before this
                written = self._write(status, BODIES[(api, status)])
                snap._record(status, decision.fp, time.monotonic() - read_at, written)

            def _write(self, status: int, body: dict[str, object]) -> bool:
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    self.wfile.flush()
                except OSError:
                    self.close_connection = True
                    return False
                return True

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # many workers connect at once; a short backlog would drop SYNs (1 s retries)

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that timed out and hung up is expected here
