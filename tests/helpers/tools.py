"""System tools a test needs: skipped without them, or failed when SNAPWATCH_REQUIRE_TOOLS=1."""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE_TOOLS = os.environ.get("SNAPWATCH_REQUIRE_TOOLS") == "1"


def need_tool(name: str) -> str:
    """The path of a system tool; skip the test without it, or fail when SNAPWATCH_REQUIRE_TOOLS=1."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        if REQUIRE_TOOLS:
            pytest.fail(f"{name} is required (SNAPWATCH_REQUIRE_TOOLS=1) but not installed")
        pytest.skip(f"{name} is not installed")
    return path
