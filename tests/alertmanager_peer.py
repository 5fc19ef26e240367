"""Real Alertmanagers on loopback for tests: start them with a given config, poll their API, stop them."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest

from tests.conftest import need_tool


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def wait_until(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``timeout`` seconds.

    Alertmanager signals readiness and ingestion only over HTTP, so this polls, briefly and bounded.
    """
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


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
