"""Shared fixtures. The shared helpers themselves live in tests/helpers/, imported as ``tests.helpers.<module>``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from snapwatch.redact import SECRETS
from tests.helpers.peers import Hook
from tests.helpers.tokens import make_canvas_token


@pytest.fixture
def canvas_token() -> str:
    return make_canvas_token()


@pytest.fixture
def hook() -> Iterator[Hook]:
    """A webhook receiver on loopback, stopped after the test."""
    h = Hook()
    yield h
    h.stop()


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    """Each test starts with a process that has seen no secret (the redactor's memory is per process)."""
    SECRETS.clear()
    yield
    SECRETS.clear()
