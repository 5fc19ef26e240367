"""Starting the daemon: the state directory made safe and locked for this one daemon, the state file waited for."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import socket
from datetime import UTC, datetime
from pathlib import Path

from snapwatch.alert.targets import targets_for
from snapwatch.config.models import Config
from snapwatch.run.daemon import Daemon
from snapwatch.run.statefailure import StateTrouble
from snapwatch.run.telemetry import Telemetry
from snapwatch.store.schema import StateUnavailable
from snapwatch.store.state import Store
from snapwatch.store.statedir import DaemonLock, prepare

log = logging.getLogger(__name__)


def run(config: Config, config_path: Path | None) -> int:
    """Run the daemon until SIGTERM/SIGINT; returns its exit code.

    Raises StateLockedError (exit 75) when another snapwatch holds the state directory, UnsafeStateDir
    (exit 78) for a directory that is not safe. A state file that cannot be opened or written for now
    (disk full, read-only, locked) is waited for, retrying with a growing delay, while SIGTERM still stops it.
    """
    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum, handler in ((signal.SIGTERM, stop.set), (signal.SIGINT, stop.set), (signal.SIGHUP, _later)):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, handler)
        lock: DaemonLock | None = None
        try:
            # The lock before anything is bound or written: a second daemon says 75, not "address in use".
            with contextlib.suppress(StateUnavailable):  # waited for below, with the metrics up
                lock = DaemonLock.acquire(prepare(config.state_dir))
            telemetry = Telemetry(config)
            store, lock = await _open_state(config, telemetry, stop, lock)
            if store is None:
                telemetry.close()
                return 0
            daemon = Daemon(config, config_path, store=store, telemetry=telemetry)
            if stop.is_set():
                daemon.stop_requested.set()
            return await daemon.run()
        finally:
            if lock is not None:
                lock.release()

    return asyncio.run(main())


def _later() -> None:
    log.info("reload asked for while starting: the configuration just loaded is the one in use")


async def _open_state(config: Config, telemetry: Telemetry, stop: asyncio.Event,
                      lock: DaemonLock | None) -> tuple[Store | None, DaemonLock | None]:
    """The store, opened under this daemon's lock; (None, lock) when stopped while waiting for it."""
    trouble: StateTrouble | None = None
    while True:
        try:
            directory = prepare(config.state_dir)
            lock = lock or DaemonLock.acquire(directory)
            store = Store.open(directory)
            store.check_writable()
        except StateUnavailable as exc:
            if trouble is None:
                targets = targets_for(config.alerts)[0]
                trouble = StateTrouble(socket.gethostname(), telemetry, functools.partial(list, targets),
                                       config.alerts.timeout.total_seconds())
            wait = trouble.failed(exc, datetime.now(UTC))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
            if stop.is_set():
                trouble.join(2.0)
                return None, lock
            continue
        if trouble is not None:
            trouble.saved(datetime.now(UTC))
        return store, lock
