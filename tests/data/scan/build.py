"""Writes the golden logs of ``snapwatch scan`` and, beside each, what scan must report about it.

Run from the repository root: ``python tests/data/scan/build.py``. The output is committed; the tests
read it, and check that a fresh build gives the same bytes (gzip files: the same content).

Each case is ``NAME.expected.json`` plus the log files it names. Expectations are worked out here from
what was written (counts, fingerprints by their contract definition) and from the rules' documented
semantics (incident times), never copied from scan's own output. Log times are UTC without a zone: the
configs written here set ``timezone: UTC``. Tokens are made up (random-looking signatures).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).parent
T0 = datetime(2025, 12, 4, 9, 0, 0, tzinfo=UTC)
PIXEL = "5bf81ee1-15b1-4dc1-b636-d7dae49b950e"
SEP = "=" * 100
OK_V3: dict[str, object] = {"status": "VALID", "reason": "Events have been processed successfully."}
OK_V2: dict[str, object] = {"status": "SUCCESS", "reason": "All records processed"}
REJECTED: dict[str, object] = {"status": "UNKNOWN", "text": "Invalid access token"}
INVALID: dict[str, object] = {"status": "INVALID", "reason": "Events failed validation", "event": 0,
                              "errors": {"codes": ["PRICE_MISSING"],
                                         "error_msgs": ["PURCHASE event requires price and currency"]}}
CONFIGS = {
    "utc.config.yaml": "sources:\n  - path: backend.log\n    timezone: UTC\n",
    "silence.config.yaml": "sources:\n  - path: backend.log\n    timezone: UTC\n"
                           "rules:\n  silence:\n    enabled: true\n    after: 30m\n",
    "longline.config.yaml": "sources:\n  - path: backend.log\n    timezone: UTC\n    max_line_bytes: 1024\n",
}


def _b64(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).rstrip(b"=").decode()


def canvas(seed: str, env: str = "PRODUCTION") -> str:
    """A made-up token shaped like a Business Manager CAPI token (Canvas S2S JWT)."""
    header = {"alg": "HS256", "kid": "CanvasS2SHMACProd", "typ": "JWT"}
    claims = {"aud": "canvas-canvasapi", "iss": "canvas-s2stoken", "nbf": 1757026800,
              "sub": f"7d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d{seed}~{env}~c1d2e3f4-1111-2222-3333-444455556666"}
    signature = base64.urlsafe_b64encode(hashlib.sha256(f"golden-{seed}".encode()).digest()).rstrip(b"=")
    return f"{_b64(header)}.{_b64(claims)}.{signature.decode()}"


TOKEN_A = canvas("a")
TOKEN_B = canvas("b")
TOKEN_STAGING = canvas("s", env="STAGING")
TOKENS = {"A": TOKEN_A, "B": TOKEN_B, "S": TOKEN_STAGING}
KINDS = {TOKEN_A: "canvas-s2s", TOKEN_B: "canvas-s2s", TOKEN_STAGING: "canvas-s2s-staging"}


def fingerprint(token: str) -> str:
    """The contract's token identity (the tokens here carry no defects to strip)."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def iso(at: datetime) -> str:
    return at.isoformat()


@dataclass
class Log:
    """One case being written: its lines (bytes) and the truth about the calls in it."""

    name: str
    lines: list[bytes] = field(default_factory=list)
    by_status: Counter[str] = field(default_factory=Counter)
    by_api: Counter[str] = field(default_factory=Counter)
    tokens: dict[str, dict[str, object]] = field(default_factory=dict)
    pending: dict[str, list[tuple[str | None, str]]] = field(default_factory=dict)  # event → (token, api)

    def message(self, at: datetime, text: str) -> None:
        """One logging call: the prefix goes on the first line only, as the backend's formatter does."""
        prefix = at.strftime("%Y-%m-%d %H:%M:%S") + " - INFO - "
        first, *rest = text.split("\n")
        self.lines.append((prefix + first).encode())
        self.lines.extend(line.encode() for line in rest)

    def request(self, at: datetime, event: str, token: str | None = None, api: str = "v3",
                in_query: bool = True, payload_extra: str = "") -> None:
        if api == "v2":
            url = "https://tr.snapchat.com/v2/conversion"
        else:
            url = f"https://tr.snapchat.com/v3/{PIXEL}/events"
            url += f"?access_token={token}" if token and in_query else ""
        payload = {"data": [{"event_name": event, "action_source": "WEB", "event_time": int(at.timestamp()),
                             "event_source_url": "https://shop.example.com/p/123" + payload_extra}]}
        for text in (SEP, f"[OUT] OUTGOING REQUEST - {event} Event ({api})", f"URL: {url}", "Method: POST",
                     "Payload:", json.dumps(payload, indent=2), SEP):
            self.message(at, text)
        self.by_api[api] += 1
        sent = token if api == "v3" and in_query else None
        self.pending.setdefault(event, []).append((sent, api))

    def response(self, at: datetime, event: str, status: int | None, body: dict[str, object] | str | None = None,
                 label: str = "Status Code", count: bool = True) -> None:
        queue = self.pending.get(event)
        token, api = queue.pop(0) if queue else (None, "v3")
        if body is None:
            ok = status is not None and 200 <= status < 300
            body = (OK_V2 if api == "v2" else OK_V3) if ok else REJECTED
        text = json.dumps(body, indent=2) if isinstance(body, dict) else body
        head = [SEP, f"[IN] INCOMING RESPONSE - {event} Event"]
        if status is not None:
            head.append(f"{label}: {status}")
        for line in [*head, f"Body: {text}", SEP, ""]:
            self.message(at, line)
        if count:
            self.count(at, status, token)

    def count(self, at: datetime, status: int | None, token: str | None) -> None:
        self.by_status["none" if status is None else str(status)] += 1
        if token is None:
            return
        seen = self.tokens.setdefault(token, {"fingerprint": fingerprint(token), "kind": KINDS[token],
                                              "first_seen": iso(at), "last_seen": iso(at),
                                              "accepted": 0, "rejected": 0})
        seen["last_seen"] = iso(at)
        if status is not None and 200 <= status < 300:
            seen["accepted"] = int(str(seen["accepted"])) + 1
        elif status in (401, 403):
            seen["rejected"] = int(str(seen["rejected"])) + 1

    def call(self, at: datetime, event: str, status: int, token: str | None = TOKEN_A, api: str = "v3",
             body: dict[str, object] | str | None = None, in_query: bool = True, label: str = "Status Code") -> None:
        self.request(at, event, token, api, in_query)
        self.response(at, event, status, body, label)

    def calls(self, start: datetime, statuses: list[int], every: float = 10.0, **kw: object) -> list[datetime]:
        """One call per status, ``every`` seconds apart; returns their times."""
        times = [start + timedelta(seconds=i * every) for i in range(len(statuses))]
        for at, status in zip(times, statuses, strict=True):
            self.call(at, "PURCHASE", status, **kw)  # type: ignore[arg-type]
        return times

    def data(self, eol: bytes = b"\n") -> bytes:
        return eol.join(self.lines) + eol

    def expected(self, **extra: object) -> dict[str, object]:
        return {
            "responses": {"total": sum(self.by_status.values()), "by_status": dict(sorted(self.by_status.items()))},
            "requests": {"total": sum(self.by_api.values()), "by_api": dict(sorted(self.by_api.items()))},
            "tokens": sorted(self.tokens.values(), key=lambda t: str(t["first_seen"])),
            **extra,
        }


def incident(rule: str, opened: datetime, resolved: datetime | None, by_status: dict[str, int],
             verdict: str | None = None) -> dict[str, object]:
    out: dict[str, object] = {"rule": rule, "opened_at": iso(opened), "resolved_at": resolved and iso(resolved),
                              "responses": sum(by_status.values()), "by_status": by_status}
    if verdict is not None:
        out["verdict"] = verdict
    return out


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# ---- the cases: each returns {file name: bytes} and the expectation --------------------------------------


Case = tuple[dict[str, bytes], dict[str, object]]


def v3_and_v2() -> Case:
    """v3 blocks with the token in the URL, v2 blocks (Bearer header not logged), both status line forms."""
    log = Log("v3-v2")
    log.calls(at(0), [200] * 4)
    for i in range(3):
        log.call(at(60 + i * 10), "PURCHASE", 200, api="v2")
    log.call(at(100), "SIGN_UP", 200, api="v2", label="HTTP Status Code")
    log.call(at(110), "PAGE_VIEW", 200, label="HTTP Status Code")
    files = {"v3-v2.log": log.data()}
    return files, log.expected(args=list(files), security=["token-in-log"])


def interleaved() -> Case:
    """Concurrent calls: requests and responses of different events interleave; paired by event and order."""
    log = Log("interleaved")
    t = at(0)
    log.request(t, "PURCHASE", TOKEN_A)
    log.request(t, "PAGE_VIEW", TOKEN_STAGING)
    log.request(t, "ADD_CART", TOKEN_A)
    log.response(t, "PAGE_VIEW", 401)  # the staging token's call, answered first
    log.request(at(1), "PURCHASE", TOKEN_B)
    log.response(at(1), "PURCHASE", 200)  # the first PURCHASE (token A)
    log.response(at(1), "ADD_CART", 200)
    log.request(at(2), "PAGE_VIEW", TOKEN_STAGING)
    log.response(at(2), "PURCHASE", 403)  # the second PURCHASE (token B)
    log.response(at(2), "PAGE_VIEW", 401)
    log.response(at(3), "SIGN_UP", 200)  # its request was never logged: counted all the same
    log.request(at(4), "VIEW_CONTENT", TOKEN_A)  # never answered before the end
    files = {"interleaved.log": log.data()}
    skipped = {"unpaired_responses": 1, "unpaired_requests": 1}
    return files, log.expected(args=list(files), skipped=skipped, incidents=[], security=["token-in-log"])


def auth_failures() -> Case:
    """auth-failures: a streak of 401s that resolves after 3 successes, then a 403 streak still open at the end."""
    log = Log("auth-failures")
    ok = log.calls(at(0), [200] * 20)
    first = log.calls(at(300), [401] * 6)
    back = log.calls(at(400), [200] * 5)
    second = log.calls(at(600), [403] * 7, in_query=False)  # the token left the URL: header only
    # The same token, unchanged requests, accepted again at the end: not revoked, no cause in the log.
    incidents = [incident("auth-failures", first[0], back[2], {"401": 6}, "unknown"),
                 incident("auth-failures", second[0], None, {"403": 7}, "auth-placement")]
    del ok
    files = {"auth-failures.log": log.data()}
    return files, log.expected(args=list(files), incidents=incidents, security=["token-in-log"])


def rate_limited() -> Case:
    log = Log("rate-limited")
    log.calls(at(0), [200] * 20)
    fails = log.calls(at(300), [429] * 6, body={"status": "INVALID", "reason": "Too many requests"})
    back = log.calls(at(400), [200] * 3)
    files = {"rate-limited.log": log.data()}
    inc = [incident("rate-limited", fails[0], back[2], {"429": 6}, "rate-limited")]
    return files, log.expected(args=list(files), incidents=inc)


def server_errors() -> Case:
    log = Log("server-errors")
    log.calls(at(0), [200] * 20)
    fails = log.calls(at(300), [500, 502, 503, 500, 502, 503], body="Service Unavailable")
    back = log.calls(at(400), [200] * 3)
    files = {"server-errors.log": log.data()}
    inc = [incident("server-errors", fails[0], back[2], {"500": 2, "502": 2, "503": 2}, "server-errors")]
    return files, log.expected(args=list(files), incidents=inc)


def invalid_events() -> Case:
    """invalid-events: 10 responses with status 400 within 5 minutes (the default count and window)."""
    log = Log("invalid-events")
    log.calls(at(0), [200] * 40, every=5)  # enough successes in the window to keep error-rate closed
    fails = log.calls(at(200), [400] * 12, every=5, body=INVALID)
    back = log.calls(at(300), [200] * 3)
    files = {"invalid-events.log": log.data()}
    inc = [incident("invalid-events", fails[0], back[2], {"400": 12}, "invalid-events")]
    return files, log.expected(args=list(files), incidents=inc)


def error_rate() -> Case:
    """error-rate: mixed failures, never 5 alike in a row, reach half of 20+ responses in the window."""
    log = Log("error-rate")
    pattern = [200, 401, 500, 429] * 6
    times = log.calls(at(0), pattern, every=5)
    back = log.calls(at(200), [200] * 3)
    # opens at the 20th response (20 in the window, 15 failed); the failures from then on count into it
    counted = Counter(str(s) for s in pattern if s != 200)
    inc = [incident("error-rate", times[1], back[2], dict(sorted(counted.items())))]
    files = {"error-rate.log": log.data()}
    return files, log.expected(args=list(files), incidents=inc)


def silence() -> Case:
    """silence (enabled in the config, after 30m): a 45-minute gap opens it, the next call resolves it."""
    log = Log("silence")
    before = log.calls(at(0), [200] * 10, every=30)
    after = log.calls(before[-1] + timedelta(minutes=45), [200] * 3, every=30)
    files = {"silence.log": log.data()}
    inc = [incident("silence", before[-1] + timedelta(minutes=30), after[0], {}, "log-silent")]
    return files, log.expected(args=list(files), config="silence.config.yaml", incidents=inc)


def rotated() -> Case:
    """RotatingFileHandler backups given out of order; a streak runs across the .log.1 → .log boundary."""
    parts = []
    log = Log("rotated")
    log.calls(at(0), [200] * 10)
    parts.append(log.data())
    log.lines.clear()
    log.calls(at(200), [200] * 3)
    first = log.calls(at(300), [401] * 4)
    parts.append(log.data())
    log.lines.clear()
    log.calls(at(340), [401] * 3)
    back = log.calls(at(400), [200] * 4)
    parts.append(log.data())
    files = {"rotated.log.2": parts[0], "rotated.log": parts[2], "rotated.log.1": parts[1]}
    inc = [incident("auth-failures", first[0], back[2], {"401": 7}, "unknown")]
    order = ["rotated.log.2", "rotated.log.1", "rotated.log"]
    return files, log.expected(args=list(files), files=order, incidents=inc)


def gzip_backup() -> Case:
    """logrotate with compress + delaycompress: .log.2.gz, .log.1, .log; a streak opens in the gzip file."""
    log = Log("gz")
    parts = []
    log.calls(at(0), [200] * 8)
    first = log.calls(at(100), [401] * 5)
    parts.append(log.data())
    log.lines.clear()
    back = log.calls(at(200), [200] * 6)
    parts.append(log.data())
    log.lines.clear()
    log.calls(at(300), [200] * 2, api="v2")
    parts.append(log.data())
    files = {"gz.log": parts[2], "gz.log.2.gz": gzip.compress(parts[0], mtime=0), "gz.log.1": parts[1]}
    inc = [incident("auth-failures", first[0], back[2], {"401": 5}, "unknown")]
    return files, log.expected(args=list(files), files=["gz.log.2.gz", "gz.log.1", "gz.log"], incidents=inc)


def bad_utf8() -> Case:
    log = Log("bad-utf8")
    log.calls(at(0), [200] * 2)
    log.request(at(30), "PURCHASE", TOKEN_A)
    # a payload line (continuation, no prefix) with bytes that are not UTF-8
    log.lines.insert(len(log.lines) - 3, b'  "note": "caf\xe9 \xff\xfe",')
    log.response(at(30), "PURCHASE", 200)
    log.calls(at(40), [200])
    return {"bad-utf8.log": log.data()}, log.expected(args=["bad-utf8.log"], skipped={"invalid_utf8": 1})


def nul_bytes() -> Case:
    """NUL bytes, as a crash leaves them in a preallocated file, ahead of the next record."""
    log = Log("nul-bytes")
    log.calls(at(0), [200] * 2)
    log.lines.append(b"\x00" * 64)
    log.calls(at(30), [401, 200])
    return {"nul-bytes.log": log.data()}, log.expected(args=["nul-bytes.log"], skipped={"nul_bytes": 1})


def crlf() -> Case:
    """Every line ends in CRLF: read exactly like LF, nothing to report."""
    log = Log("crlf")
    log.calls(at(0), [200, 200, 401, 200])
    log.call(at(60), "PURCHASE", 200, api="v2", label="HTTP Status Code")
    return {"crlf.log": log.data(b"\r\n")}, log.expected(args=["crlf.log"], skipped={})


def long_line() -> Case:
    """A line over max_line_bytes (1024 in its config) is cut and counted; the call is still counted."""
    log = Log("long-line")
    log.calls(at(0), [200])
    log.request(at(10), "PURCHASE", TOKEN_A, payload_extra="?q=" + "x" * 3000)
    log.response(at(10), "PURCHASE", 200)
    log.calls(at(20), [200])
    return {"long-line.log": log.data()}, log.expected(args=["long-line.log"], config="longline.config.yaml",
                                                       skipped={"long_lines": 1})


def cut_body() -> Case:
    """The file ends inside a response's JSON body (the backend died mid-write)."""
    log = Log("cut-body")
    log.calls(at(0), [200] * 2)
    log.request(at(30), "PURCHASE", TOKEN_A)
    log.message(at(30), SEP)
    log.message(at(30), "[IN] INCOMING RESPONSE - PURCHASE Event")
    log.message(at(30), "Status Code: 200")
    log.message(at(30), 'Body: {\n  "status": "VALID",')
    log.pending["PURCHASE"].pop(0)
    log.count(at(30), 200, TOKEN_A)
    return {"cut-body.log": log.data()}, log.expected(args=["cut-body.log"], skipped={"truncated_bodies": 1})


def no_status() -> Case:
    """A response block with no status line: counted under "none", never dropped."""
    log = Log("no-status")
    log.calls(at(0), [200] * 2)
    log.request(at(30), "PURCHASE", TOKEN_A)
    log.response(at(30), "PURCHASE", None, body={"status": "UNKNOWN", "text": "connection reset"})
    log.calls(at(40), [200])
    return {"no-status.log": log.data()}, log.expected(args=["no-status.log"],
                                                       skipped={"responses_without_status": 1})


CASES = {
    "v3-v2": v3_and_v2, "interleaved": interleaved, "auth-failures": auth_failures,
    "rate-limited": rate_limited, "server-errors": server_errors, "invalid-events": invalid_events,
    "error-rate": error_rate, "silence": silence, "rotated": rotated, "gz": gzip_backup,
    "bad-utf8": bad_utf8, "nul-bytes": nul_bytes, "crlf": crlf, "long-line": long_line,
    "cut-body": cut_body, "no-status": no_status,
}


def build() -> dict[str, bytes]:
    """Every file this script writes, by name (relative to this folder)."""
    out = {name: text.encode() for name, text in CONFIGS.items()}
    for name, make in CASES.items():
        files, expected = make()
        expected.setdefault("config", "utc.config.yaml")
        expected.setdefault("files", expected["args"])
        expected.setdefault("skipped", {})
        expected.setdefault("incidents", [])
        expected.setdefault("security", ["token-in-log"] if expected["tokens"] else [])
        out.update(files)
        out[f"{name}.expected.json"] = (json.dumps(expected, indent=1, ensure_ascii=False) + "\n").encode()
    return out


def main() -> None:
    for name, data in build().items():
        (HERE / name).write_bytes(data)


if __name__ == "__main__":
    main()
