"""Shared test fixtures: fake tokens, the tool requirement switch, and a secret-leak check."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

import pytest

from snapwatch.synthetic import demo_token

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

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


def make_canvas_token(nbf: int = 1764800000, env: str = "PRODUCTION", seed: str = "a") -> str:
    """A fake long-lived Canvas S2S JWT shaped like a real CAPI token (its signature is made up)."""
    return demo_token(nbf, env, seed)


def assert_no_secret(text: str | bytes, *secrets: str) -> None:
    """Fail when any secret, or any 11-character piece of it, appears in ``text`` (6+4 hints are allowed)."""
    haystack = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    for secret in secrets:
        assert secret not in haystack
        for i in range(0, max(1, len(secret) - 11), 7):
            piece = secret[i : i + 11]
            if len(piece) == 11:
                assert piece not in haystack, "a piece of a secret leaked"


def snapwatch_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The captured records of snapwatch and the libraries it drives, without the test backends' own log.

    The fake backends (loggers under ``snapwatch.tests``/``snapwatch.test``/``snapwatch.bench``) write
    the token into their log on purpose, as real backends do; pytest ≥ 9 captures their non-propagating
    loggers too, and those records are the input under test, not snapwatch's output.
    """
    return [r for r in caplog.records if not r.name.startswith(_BACKEND_LOGGERS)]


_BACKEND_LOGGERS = ("snapwatch.tests.", "snapwatch.test.", "snapwatch.bench.")


@pytest.fixture
def canvas_token() -> str:
    return make_canvas_token()
