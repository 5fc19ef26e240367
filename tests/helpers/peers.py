"""Real peers on loopback: a webhook receiver, an SMTP mailbox, a stand-in for Snap, a timed backend writer."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from snapwatch.synthetic import Call, backend_logger, log_call

HOOK_SECRET = "k3x9wq7m2z8v5t4r1p6n0b3c5d"  # a Mattermost-style webhook key: must never be shown
SMTP_PASSWORD = "S3cret-Smtp-Pa55"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Hook:
    """A webhook receiver on loopback; records (path, JSON body) and lets tests await arrivals."""

    def __init__(self, port: int = 0) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.arrived_at: list[float] = []  # time.monotonic() of each arrival
        self.cond = threading.Condition()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with hook.cond:
                    hook.received.append((self.path, body))
                    hook.arrived_at.append(time.monotonic())
                    hook.cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, n: int, timeout: float = 10.0) -> list[tuple[str, dict[str, Any]]]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.received) >= n, timeout), (n, len(self.received))
            return list(self.received)


class Mailbox:
    """An aiosmtpd handler and authenticator that keeps every message's bytes and every login."""

    def __init__(self, password: str = SMTP_PASSWORD) -> None:
        self.password = password
        self.messages: list[bytes] = []
        self.logins: list[tuple[bytes, bytes]] = []
        self.arrived = threading.Event()
        self.cond = threading.Condition()

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        with self.cond:
            self.messages.append(envelope.content)
            self.cond.notify_all()
        self.arrived.set()
        return "250 OK"

    def authenticate(self, server: object, session: object, envelope: object, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login, data.password))
        return AuthResult(success=data.password == self.password.encode())

    def wait_for(self, n: int, timeout: float = 10.0) -> list[bytes]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.messages) >= n, timeout), (n, len(self.messages))
            return list(self.messages)


@contextmanager
def smtp_server(box: Mailbox) -> Iterator[int]:
    """Run an SMTP server (AUTH without TLS, loopback only) for ``box``; yields its port."""
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, authenticator=box.authenticate,
                            auth_require_tls=False)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


class _At(logging.Filter):
    """Stamps every record with the writer's chosen time, so a test controls the log's clock."""

    def __init__(self) -> None:
        super().__init__()
        self.at: datetime | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if self.at is not None:
            record.created = self.at.timestamp()
            record.msecs = (record.created % 1) * 1000
        return True


class Backend:
    """Writes CAPI calls to ``path`` exactly as the backend logs them, stamped with UTC times of our choosing."""

    def __init__(self, path: Path, name: str = "snapwatch.tests.backend") -> None:
        self.handler = logging.FileHandler(path, encoding="utf-8")
        self.logger = backend_logger(self.handler, name)
        assert self.handler.formatter is not None
        self.handler.formatter.converter = time.gmtime  # the source is configured with timezone UTC
        self.stamp = _At()
        self.handler.addFilter(self.stamp)

    def calls(self, token: str, statuses: list[int], at: list[datetime]) -> None:
        """One PURCHASE call per status, the i-th logged at ``at[i]``."""
        self.write([Call("PURCHASE", status, token) for status in statuses], at)

    def write(self, calls: list[Call], at: list[datetime]) -> None:
        """The i-th call logged at ``at[i]``."""
        for call, when in zip(calls, at, strict=True):
            self.stamp.at = when
            log_call(self.logger, call, when)
        self.handler.flush()

    def close(self) -> None:
        self.handler.close()


@dataclass
class Seen:
    """One request the stand-in for Snap received."""

    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str
    body: dict[str, object]


@dataclass
class FakeSnap:
    """What the stand-in answers, and what it saw. ``hold`` makes it wait (until ``release``) before answering."""

    status: int = 200
    body: str = '{"status": "VALID", "reason": "Events have been processed successfully."}'
    hold: float = 0.0
    received: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    seen: list[Seen] = field(default_factory=list)
    base_url: str = ""


@contextmanager
def snap_server() -> Iterator[FakeSnap]:
    """Run a stand-in for Snap's validate endpoint on loopback; yields what it answers and saw."""
    fake = FakeSnap()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length", "0"))
            payload = json.loads(self.rfile.read(length) or b"{}")
            fake.seen.append(Seen("POST", url.path, parse_qs(url.query), self.headers.get("Content-Type", ""), payload))
            fake.received.set()
            if fake.hold:
                # Stands in for a slow Snap; the test releases it early once it has its answer.
                fake.release.wait(fake.hold)
            data = fake.body.encode()
            self.send_response(fake.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: object, client_address: object) -> None:
            pass  # a client that timed out and hung up is expected here

    server = Server(("127.0.0.1", 0), Handler)
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)

