"""`snapwatch run` as a subprocess under a stand-in for systemd: its notify socket, its stderr, a backend log.

The notify socket is a datagram socket bound in tmp_path that a thread drains as messages arrive (so their
arrival times are true); with ``journal=True`` the daemon's stderr is one end of a stream socket pair whose
device and inode are passed in ``JOURNAL_STREAM``, as journald does.
"""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from snapwatch.cli.app import main as cli_main
from snapwatch.synthetic import Call, backend_logger, log_call
from tests.helpers.paths import ROOT

START_TIMEOUT = 20.0  # seconds; generous for a loaded CI machine, never reached when all is well
EVENT_TIMEOUT = 8.0
# Inherited from a test run that itself runs under systemd, these would reach the daemon and confuse it.
SYSTEMD_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "LISTEN_FDS", "LISTEN_PID")


class BackendLog:
    """A log file written through the backend's logging format, one CAPI call at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handler = logging.FileHandler(path, encoding="utf-8")
        self.logger = backend_logger(self.handler, name=f"tests.backend.{uuid.uuid4().hex}")
        self.at = datetime(2025, 12, 4, 9, 0, tzinfo=UTC)

    def write(self, status: int, count: int, token: str) -> None:
        for _ in range(count):
            self.at += timedelta(seconds=1)
            log_call(self.logger, Call("PURCHASE", status, token), self.at)
        self.handler.flush()

    def close(self) -> None:
        self.handler.close()


class NotifySocket:
    """The notify socket systemd would listen on; a thread records every datagram with its arrival time."""

    def __init__(self, directory: Path) -> None:
        path = str(directory / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if len(path.encode()) < 100:  # sun_path holds 108 bytes; a deep tmp_path falls back to abstract
            self.sock.bind(path)
            self.env_value = path
        else:
            name = f"snapwatch-test-{uuid.uuid4().hex}"
            self.sock.bind(b"\0" + name.encode())
            self.env_value = "@" + name
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._drain, name="notify-socket", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._closed:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._cond:
                self.messages.append((time.monotonic(), data.decode("utf-8")))
                self._cond.notify_all()

    def texts(self, start: int = 0) -> list[str]:
        with self._cond:
            return [text for _, text in self.messages[start:]]

    def wait_for(self, predicate: Callable[[str], bool], timeout: float, start: int,
                 alive: Callable[[], bool]) -> int:
        """The index of the first message from ``start`` on that matches; fails at the deadline or on exit."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(start, len(self.messages)):
                    if predicate(self.messages[i][1]):
                        return i
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not alive():
                    seen = [text for _, text in self.messages[start:]]
                    why = "the daemon exited" if not alive() else f"nothing matched within {timeout} s"
                    raise AssertionError(f"{why}; notifications since #{start}: {seen}")
                self._cond.wait(min(remaining, 0.2))

    def close(self) -> None:
        self._closed = True
        self._thread.join(2)
        self.sock.close()


class Daemon:
    """``python -m snapwatch run -c CONFIG`` as a subprocess, with its notify socket and its stderr."""

    def __init__(self, tmp_path: Path, config: Path, *, watchdog_usec: int | None = None,
                 journal: bool = False) -> None:
        self.config = config
        self.notify = NotifySocket(tmp_path)
        env = {k: v for k, v in os.environ.items() if k not in SYSTEMD_VARS}
        env["NOTIFY_SOCKET"] = self.notify.env_value
        env["PYTHONPATH"] = str(ROOT)
        if watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(watchdog_usec)  # WATCHDOG_PID unset: the pings are for this process
        self._stderr_buf = bytearray()
        self._stderr_reader: threading.Thread | None = None
        self._stderr_file: IO[bytes] | None = None
        stderr: int | IO[bytes]
        if journal:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            st = os.fstat(theirs.fileno())
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
            stderr = theirs.fileno()
        else:
            self._stderr_file = stderr = (tmp_path / "stderr.log").open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "snapwatch", "run", "-c", str(config)],
                                     cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=stderr)
        if journal:
            theirs.close()  # only the child holds the write end now: EOF when it exits
            self._stderr_reader = threading.Thread(target=self._read_socket, args=(ours,), daemon=True)
            self._stderr_reader.start()

    def _read_socket(self, sock: socket.socket) -> None:
        with sock:
            while chunk := sock.recv(65536):
                self._stderr_buf.extend(chunk)

    def stderr(self) -> str:
        """Everything the daemon wrote to stderr so far (complete once it has exited)."""
        if self._stderr_file is not None:
            self._stderr_file.flush()
            return Path(self._stderr_file.name).read_text(encoding="utf-8", errors="replace")
        if self._stderr_reader is not None and self.proc.poll() is not None:
            self._stderr_reader.join(5)
        return self._stderr_buf.decode("utf-8", errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_for(self, predicate: Callable[[str], bool] | str, start: int = 0,
                 timeout: float = EVENT_TIMEOUT) -> int:
        """Index of the first notification from ``start`` on matching ``predicate`` (or equal to a string)."""
        match = (lambda text: text == predicate) if isinstance(predicate, str) else predicate
        try:
            return self.notify.wait_for(match, timeout, start, self.alive)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nstderr:\n{self.stderr()[-3000:]}") from None

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def close(self) -> None:
        """Kill the daemon if it still runs; release the sockets and files."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.notify.close()
        if self._stderr_reader is not None:
            self._stderr_reader.join(5)
        if self._stderr_file is not None:
            self._stderr_file.close()


def status_json(state_dir: Path, tmp_path: Path) -> dict[str, Any]:
    """What ``snapwatch status --json`` prints, read through a config that names only the state dir.

    A separate config so a test can query the state while the daemon's own config file is broken.
    """
    config = tmp_path / "status.yaml"
    if not config.exists():
        config.write_text(f"state_dir: {json.dumps(str(state_dir))}\n", encoding="utf-8")
    out = io.StringIO()
    assert cli_main(["status", "--json", "-c", str(config)], stdout=out) == 0
    data: dict[str, Any] = json.loads(out.getvalue())
    return data


def source_status(data: dict[str, Any], path: Path) -> dict[str, Any]:
    found: list[dict[str, Any]] = [s for s in data["sources"] if s["path"] == str(path)]
    assert found, f"{path} not in status: {data['sources']}"
    return found[0]


def wait_until(check: Callable[[], bool], daemon: Daemon, timeout: float = EVENT_TIMEOUT,
               what: str = "condition") -> None:
    """Poll ``check`` (a state query; there is no event for it) until true, with a deadline."""
    deadline = time.monotonic() + timeout
    while not check():
        assert daemon.alive(), f"the daemon exited while waiting for {what}:\n{daemon.stderr()[-3000:]}"
        assert time.monotonic() < deadline, f"{what} not reached within {timeout} s"
        time.sleep(0.05)


def fake_systemctl(bindir: Path, output: str, exit_code: int = 0) -> Path:
    """A stand-in ``systemctl`` on PATH (systemd is not running where tests run) that records its argv."""
    bindir.mkdir(exist_ok=True)
    script = bindir / "systemctl"
    script.write_text(
        f'#!/bin/sh\necho "$@" >> "{bindir}/argv"\nprintf "%s\\n" "{output}"\nexit {exit_code}\n',
        encoding="utf-8",
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return bindir
