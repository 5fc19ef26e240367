"""Peers for the daemon's fleet tests: real Alertmanagers on loopback, and a proxy that holds posts."""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest

from tests.helpers.peers import free_port
from tests.helpers.tools import need_tool
from tests.helpers.wait import wait_until


@dataclass
class Running:
    """One Alertmanager process: its base URL and its log file."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def get_json(url: str, path: str) -> Any:
    reply = httpx.get(url + path, timeout=5)
    reply.raise_for_status()
    return reply.json()


def active_alerts(url: str) -> list[dict[str, Any]]:
    """The alerts Alertmanager at ``url`` holds as active (resolved ones it no longer lists)."""
    return [a for a in get_json(url, "/api/v2/alerts") if a["status"]["state"] == "active"]


class Alertmanagers:
    """Starts ``prometheus-alertmanager`` processes under ``folder`` with ``config``; stops them all on exit.

    Skips the test when the binary is absent (fails with SNAPWATCH_REQUIRE_TOOLS=1).
    """

    def __init__(self, folder: Path, config: str) -> None:
        self.binary = need_tool("prometheus-alertmanager")
        self.folder = folder
        self.config_path = folder / "am.yml"
        self.config_path.write_text(config)
        self.started: list[Running] = []

    def start(self, name: str, cluster: list[str]) -> Running:
        """Start member ``name`` with the ``--cluster.*`` flags in ``cluster``; returns once it is ready."""
        port = free_port()
        log = self.folder / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config_path}",
                    f"--storage.path={self.folder / name}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    *cluster,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        running = Running(f"http://127.0.0.1:{port}", proc, log)
        self.started.append(running)

        def ready() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"alertmanager {name} exited: {log.read_text()[-2000:]}")
            try:
                return httpx.get(f"{running.url}/-/ready", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, f"alertmanager {name} to be ready")
        return running

    def stop_all(self) -> None:
        for running in self.started:
            running.stop()

    def __enter__(self) -> Alertmanagers:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop_all()


class HeldProxy:
    """An HTTP front for one Alertmanager that holds each POST until ``release`` is set, then forwards it.

    It makes "a post still in flight while something else happens" happen on demand. ``arrived`` is set
    when a post arrives; ``forwarded`` lists the bodies passed on, in order.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.arrived, self.release = threading.Event(), threading.Event()
        self.forwarded: list[bytes] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                proxy.arrived.set()
                proxy.release.wait(timeout=15)
                reply = httpx.post(
                    proxy.upstream + self.path, content=body, headers={"Content-Type": "application/json"}, timeout=5
                )
                proxy.forwarded.append(body)
                self.send_response(reply.status_code)
                self.send_header("Content-Length", str(len(reply.content)))
                self.end_headers()
                self.wfile.write(reply.content)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
