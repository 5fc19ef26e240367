"""The machine the system tests share: wheels built from this checkout, a booted Debian 12, the guide run.

It needs root, systemd-nspawn, nsenter and debootstrap (for the first build of the cached root) and
a kernel that lets systemd-nspawn boot; without them the tests skip with the reason, and with
SNAPWATCH_REQUIRE_TOOLS=1 they fail instead. (Not a conftest.py: the suite's tests import the top-level
``conftest`` by name, and a second one would shadow it.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers.tools import REQUIRE_TOOLS, need_tool
from tests.system.harness import REPO, Installed
from tests.system.machine import Machine, MachineUnavailable, ensure_root


def unavailable(reason: str) -> None:
    if REQUIRE_TOOLS:
        pytest.fail(f"{reason} (required: SNAPWATCH_REQUIRE_TOOLS=1)")
    pytest.skip(reason)


def build_wheels(out: Path) -> Path:
    """snapwatch and all its dependencies as wheels, built from this checkout with this Python."""
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(out), str(REPO)],
                          capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        pytest.fail(f"pip wheel failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return out


@contextmanager
def installed_machine(wheel_dir: Path) -> Iterator[Installed]:
    """A freshly booted Debian 12 with snapwatch installed by docs/systemd.md's steps, the service started."""
    if os.geteuid() != 0:
        unavailable("booting a machine with systemd-nspawn needs root")
    nspawn = need_tool("systemd-nspawn")
    need_tool("nsenter")
    debootstrap = need_tool("debootstrap")
    clock = time.monotonic()
    try:
        image = ensure_root(debootstrap)
    except MachineUnavailable as exc:
        unavailable(f"cannot build the Debian 12 root: {exc}")
    timings = {"root": time.monotonic() - clock}
    clock = time.monotonic()
    wheels = build_wheels(wheel_dir)
    timings["wheels"] = time.monotonic() - clock
    clock = time.monotonic()
    machine = Machine(image, nspawn)
    try:
        machine.__enter__()
    except MachineUnavailable as exc:
        unavailable(f"systemd-nspawn cannot boot a machine here: {exc}")
    try:
        timings["boot"] = time.monotonic() - clock
        clock = time.monotonic()
        svc = Installed(machine)
        svc.stage(wheels)
        svc.prepare_host()
        timings["backend"] = time.monotonic() - clock
        clock = time.monotonic()
        svc.run_guide()
        timings["guide"] = time.monotonic() - clock
        sys.stderr.write("system test set-up: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()) + "\n")
        yield svc
    finally:
        machine.close()
