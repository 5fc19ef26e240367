"""SystemdNotifier against real AF_UNIX datagram sockets, bound by path and in the abstract namespace."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapwatch.run.sdnotify import MAX_STATUS_CHARS, SystemdNotifier, monotonic_usec, one_line


class Listener:
    """A bound datagram socket standing in for systemd's notify socket."""

    def __init__(self, address: str | bytes, env_value: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(5)
        self.env_value = env_value

    def recv(self) -> str:
        return self.sock.recv(65536).decode("utf-8")

    def pending(self) -> list[str]:
        """Every datagram already queued, without waiting (the sender's sendto has returned)."""
        self.sock.setblocking(False)
        out: list[str] = []
        try:
            while True:
                out.append(self.sock.recv(65536).decode("utf-8"))
        except BlockingIOError:
            pass
        finally:
            self.sock.settimeout(5)
        return out


@pytest.fixture
def path_listener(tmp_path: Path) -> Iterator[Listener]:
    path = tmp_path / "notify.sock"
    listener = Listener(str(path), str(path))
    yield listener
    listener.sock.close()


@pytest.fixture
def abstract_listener() -> Iterator[Listener]:
    name = f"snapwatch-test-{uuid.uuid4().hex}"
    listener = Listener(b"\0" + name.encode(), "@" + name)
    yield listener
    listener.sock.close()


@pytest.fixture(params=["path", "abstract"])
def listener(
    request: pytest.FixtureRequest, path_listener: Listener, abstract_listener: Listener
) -> Listener:
    return path_listener if request.param == "path" else abstract_listener


def test_messages_reach_the_socket_in_order(listener: Listener) -> None:
    with SystemdNotifier({"NOTIFY_SOCKET": listener.env_value}) as n:
        assert n.enabled
        n.ready()
        n.status("following 2 files, 0 open incidents, outbox 0")
        n.watchdog()
        n.reloading(123_456_789)
        n.ready()
        n.stopping()
    assert [listener.recv() for _ in range(6)] == [
        "READY=1",
        "STATUS=following 2 files, 0 open incidents, outbox 0",
        "WATCHDOG=1",
        "RELOADING=1\nMONOTONIC_USEC=123456789",
        "READY=1",
        "STOPPING=1",
    ]


def test_status_is_utf8_one_line_and_sent_only_on_change(path_listener: Listener) -> None:
    n = SystemdNotifier({"NOTIFY_SOCKET": path_listener.env_value})
    text = "инцидент открыт: 401 ×5 — 日本語\nsecond line\r\n third"
    n.status(text)
    n.status(text)  # unchanged: nothing sent
    n.status("инцидент открыт: 401 ×5 — 日本語 second line third")  # same once flattened
    n.status("all clear")
    assert path_listener.pending() == [
        "STATUS=инцидент открыт: 401 ×5 — 日本語 second line third",
        "STATUS=all clear",
    ]
    n.close()


def test_long_status_is_cut() -> None:
    line = one_line("x" * 1000)
    assert len(line) == MAX_STATUS_CHARS
    assert line.endswith("…")


def test_without_notify_socket_everything_is_a_no_op() -> None:
    n = SystemdNotifier({})
    assert not n.enabled
    assert n.send("READY=1") is False
    n.ready()
    n.status("x")
    n.watchdog()
    n.reloading(1)
    n.stopping()
    assert n.watchdog_interval() is None
    assert n.send_errors == 0


def test_relative_socket_path_is_refused_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="snapwatch.run.sdnotify"):
        n = SystemdNotifier({"NOTIFY_SOCKET": "relative/notify.sock"})
    assert not n.enabled
    assert "not an absolute path" in caplog.text


def test_send_failure_never_raises_and_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    n = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens.sock")})
    assert n.enabled
    with caplog.at_level(logging.WARNING, logger="snapwatch.run.sdnotify"):
        n.ready()
        n.watchdog()
        n.status("s")
    assert n.send_errors == 3
    assert len([r for r in caplog.records if "notifying systemd failed" in r.getMessage()]) == 1
    n.close()


def test_status_lost_while_socket_is_gone_is_sent_again(tmp_path: Path) -> None:
    path = tmp_path / "late.sock"
    n = SystemdNotifier({"NOTIFY_SOCKET": str(path)})
    n.status("one incident open")
    assert n.send_errors == 1
    late = Listener(str(path), str(path))
    n.status("one incident open")
    assert late.pending() == ["STATUS=one incident open"]
    late.sock.close()
    n.close()


def test_full_receive_queue_drops_instead_of_blocking(path_listener: Listener) -> None:
    n = SystemdNotifier({"NOTIFY_SOCKET": path_listener.env_value})
    # Nobody reads: the receiver's queue fills and sendto would block; the notifier must return at once.
    for _ in range(5000):
        n.watchdog()
    assert n.send_errors > 0
    n.close()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "not-a-pid"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(path_listener: Listener, env: dict[str, str], expected: float | None) -> None:
    n = SystemdNotifier({"NOTIFY_SOCKET": path_listener.env_value, **env})
    assert n.watchdog_interval() == expected
    n.close()


def test_watchdog_interval_uses_the_given_pid(path_listener: Listener) -> None:
    env = {"NOTIFY_SOCKET": path_listener.env_value, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "4242"}
    with SystemdNotifier(env, pid=4242) as mine, SystemdNotifier(env, pid=4243) as other:
        assert mine.watchdog_interval() == 1.0
        assert other.watchdog_interval() is None


def test_watchdog_needs_a_socket() -> None:
    assert SystemdNotifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval() is None


def test_extend_timeout(path_listener: Listener) -> None:
    with SystemdNotifier({"NOTIFY_SOCKET": path_listener.env_value}) as n:
        n.extend_timeout(2.5)
    assert path_listener.recv() == "EXTEND_TIMEOUT_USEC=2500000"


def test_monotonic_usec_is_clock_monotonic() -> None:
    ours = monotonic_usec()
    kernel = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert 0 <= kernel - ours < 1_000_000
