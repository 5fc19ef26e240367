"""`snapwatch run` as a child process: started, awaited line by line on stderr, stopped or killed."""

from __future__ import annotations

import json
import queue
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers.cli import snapwatch_process
from tests.helpers.paths import ROOT

READY = "; ready"


class DaemonProcess:
    """``python -m snapwatch run`` in the repo root; its stderr is drained by a thread, line by line."""

    def __init__(self, config: Path, *, memory_limit: int | None = None) -> None:
        """``memory_limit``: bytes of address space the daemon may take (a test of runaway input sets one)."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "snapwatch", "run", "-c", str(config)], cwd=ROOT,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if memory_limit is not None:
            resource.prlimit(self.proc.pid, resource.RLIMIT_AS, (memory_limit, memory_limit))
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float) -> None:
        """Block until a stderr line contains ``text``; fail on timeout or when the daemon exits first."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"the daemon did not log {text!r} within {timeout}s:\n{self.output()}")
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                pytest.fail(f"the daemon exited before logging {text!r}:\n{self.output()}")
            if text in line:
                return

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._close()

    def terminate(self, timeout: float = 15.0) -> tuple[int, float]:
        """SIGTERM; returns the exit code and how long the stop took."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        elapsed = time.monotonic() - started
        self._close()
        return code, elapsed

    def _close(self) -> None:
        self._reader.join(10)
        assert self.proc.stderr is not None
        self.proc.stderr.close()

    def output(self) -> str:
        return "".join(self.lines[-40:])


def status_json(config: Path) -> dict[str, object]:
    """What ``snapwatch status --json -c CONFIG`` prints, from a child process."""
    done = snapwatch_process("status", "--json", "-c", str(config))
    assert done.returncode == 0, done.stderr
    data: dict[str, object] = json.loads(done.stdout)
    return data
