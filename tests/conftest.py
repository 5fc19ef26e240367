"""Shared fixtures. The shared helpers themselves live in tests/helpers/, imported as ``tests.helpers.<module>``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
