"""Waiting for a condition: polled, bounded, failing with what was awaited."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest


async def until(check: Callable[[], bool], what: str = "condition", timeout: float = 10.0, *,
                off_loop: bool = False) -> None:
    """Wait, on the running loop, until ``check()`` holds; fail naming ``what`` after ``timeout`` seconds.

    ``off_loop`` runs each check in a worker thread: for checks that block (an HTTP query to a peer), so
    the daemon on this loop keeps running meanwhile.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (await asyncio.to_thread(check) if off_loop else check()):
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05 if off_loop else 0.02)


def wait_until(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``timeout`` seconds (outside any event loop)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)
