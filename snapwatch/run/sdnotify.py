"""The systemd notify protocol: READY, STATUS, WATCHDOG, RELOADING, STOPPING datagrams to $NOTIFY_SOCKET."""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from collections.abc import Mapping
from types import TracebackType

log = logging.getLogger(__name__)

# STATUS= is shown by `systemctl status` on one line; anything longer is noise there.
MAX_STATUS_CHARS = 400
_LINE_BREAKS = re.compile(r"\s*[\r\n\v\f\x85\u2028\u2029]+\s*")


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in µs, the clock systemd expects in MONOTONIC_USEC= (time.monotonic on Linux)."""
    return time.monotonic_ns() // 1000


def one_line(text: str, limit: int = MAX_STATUS_CHARS) -> str:
    """``text`` with line breaks collapsed to single spaces, trimmed, and cut to ``limit`` characters."""
    flat = _LINE_BREAKS.sub(" ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _address(value: str) -> str | bytes | None:
    # "@name" is an abstract socket (a leading NUL on the wire); anything else must be an absolute path.
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode("utf-8", "surrogateescape")
    if value.startswith("/"):
        return value
    return None


class SystemdNotifier:
    """Sends sd_notify messages to the socket named by ``$NOTIFY_SOCKET``.

    Without ``$NOTIFY_SOCKET`` (not started by systemd, or ``Type=`` is not ``notify``) every method is a
    cheap no-op. Sends never block (the socket is non-blocking; a full queue drops the message) and never
    raise: the first failure is logged once as a warning and counted in ``send_errors``. Messages are UTF-8,
    so status text in any script reaches ``systemctl status`` intact. Not a context for secrets: status text
    is visible to every local user.
    """

    def __init__(self, environ: Mapping[str, str] | None = None, *, pid: int | None = None) -> None:
        """Read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC``, ``WATCHDOG_PID`` from ``environ`` (default: os.environ).

        ``pid`` is this process's id (default: os.getpid()), compared with ``WATCHDOG_PID``.
        """
        env = os.environ if environ is None else environ
        self._pid = os.getpid() if pid is None else pid
        self._watchdog_usec = env.get("WATCHDOG_USEC")
        self._watchdog_pid = env.get("WATCHDOG_PID")
        self._last_status: str | None = None
        self._warned = False
        self.send_errors = 0
        self._sock: socket.socket | None = None
        self._addr: str | bytes | None = None
        raw = env.get("NOTIFY_SOCKET")
        if not raw:
            return
        addr = _address(raw)
        if addr is None:
            log.warning("NOTIFY_SOCKET %r is not an absolute path nor @abstract; not notifying systemd", raw)
            return
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        except OSError as exc:
            log.warning("cannot open a socket to notify systemd (%s); not notifying", exc)
            return
        sock.setblocking(False)
        self._sock, self._addr = sock, addr

    @property
    def enabled(self) -> bool:
        """True when messages go somewhere (``$NOTIFY_SOCKET`` was set and usable)."""
        return self._sock is not None

    def send(self, message: str) -> bool:
        """Send one raw message (``KEY=VALUE`` lines). True when the datagram was handed to the kernel."""
        if self._sock is None or self._addr is None:
            return False
        try:
            self._sock.sendto(message.encode("utf-8", "surrogateescape"), self._addr)
        except OSError as exc:
            self.send_errors += 1
            if not self._warned:
                self._warned = True
                log.warning("notifying systemd failed (%s); further failures are counted, not logged", exc)
            return False
        return True

    def ready(self) -> None:
        """``READY=1``: start-up (or a reload) is complete; systemd marks the unit active."""
        self.send("READY=1")

    def status(self, text: str) -> None:
        """``STATUS=``: a one-line summary for ``systemctl status``; sent only when it changed."""
        line = one_line(text)
        if line == self._last_status or self._sock is None:
            return
        if self.send(f"STATUS={line}"):
            # Remembered only once delivered, so a dropped update is sent again next time.
            self._last_status = line

    def watchdog(self) -> None:
        """``WATCHDOG=1``: the main loop is alive. Call it from the loop itself, never from a side thread."""
        self.send("WATCHDOG=1")

    def reloading(self, monotonic_usec: int) -> None:
        """``RELOADING=1`` with ``MONOTONIC_USEC=`` (CLOCK_MONOTONIC µs, see :func:`monotonic_usec`).

        Send ``READY=1`` with :meth:`ready` when the reload is done, whether it succeeded or not.
        """
        self.send(f"RELOADING=1\nMONOTONIC_USEC={int(monotonic_usec)}")

    def stopping(self) -> None:
        """``STOPPING=1``: shutdown has begun."""
        self.send("STOPPING=1")

    def extend_timeout(self, seconds: float) -> None:
        """``EXTEND_TIMEOUT_USEC=``: ask for ``seconds`` more before start-up or stop times out."""
        self.send(f"EXTEND_TIMEOUT_USEC={max(1, round(seconds * 1_000_000))}")

    def watchdog_interval(self) -> float | None:
        """Seconds between ``WATCHDOG=1`` pings: half of ``$WATCHDOG_USEC``.

        None when the watchdog is off for this process: no usable notify socket, ``WATCHDOG_USEC`` absent,
        zero or not a number, or ``WATCHDOG_PID`` set to another process (the variables were inherited).
        """
        if self._sock is None or not self._watchdog_usec:
            return None
        if self._watchdog_pid:
            try:
                if int(self._watchdog_pid) != self._pid:
                    return None
            except ValueError:
                return None
        try:
            usec = int(self._watchdog_usec)
        except ValueError:
            log.warning("WATCHDOG_USEC=%r is not a number; watchdog pings are off", self._watchdog_usec)
            return None
        if usec <= 0:
            return None
        return usec / 2_000_000

    def close(self) -> None:
        """Close the socket; later calls are no-ops."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> SystemdNotifier:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
