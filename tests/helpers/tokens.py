"""Fake tokens, and the checks that no token (nor a long enough piece of one) leaks."""

from __future__ import annotations

import base64
import json
import logging
from secrets import token_bytes

import jwt
import pytest

from snapwatch.ingest.tokens import normalize
from snapwatch.synthetic import demo_token

NBF = 1764800000  # 2025-12-03T22:13:20Z
SUB = "0c7b1f6e-3a4e-4b9c-9d1e-5a6b7c8d9e0f~{env}~b1c2d3e4-aaaa-bbbb-cccc-0123456789ab"


def make_canvas_token(nbf: int = NBF, env: str = "PRODUCTION", seed: str = "a") -> str:
    """A fake long-lived Canvas S2S JWT shaped like a real CAPI token (its signature is made up)."""
    return demo_token(nbf, env, seed)


def canvas(env: str = "PRODUCTION", nbf: int = NBF) -> str:
    """A Canvas S2S JWT shaped like a Business Manager CAPI token, HMAC-signed with a throwaway key."""
    claims = {"aud": "canvas-canvasapi", "iss": "canvas-s2stoken", "nbf": nbf, "sub": SUB.format(env=env)}
    return jwt.encode(claims, token_bytes(32), algorithm="HS256", headers={"kid": "CanvasS2SHMACProd"})


def jwt_segment(obj: object) -> str:
    """``obj`` as one JWT segment: JSON, base64url without padding."""
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def assert_no_secret(text: str | bytes, *secrets: str) -> None:
    """Fail when any secret, or any 11-character piece of it, appears in ``text`` (6+4 hints are allowed)."""
    haystack = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    for secret in secrets:
        assert secret not in haystack
        for i in range(0, max(1, len(secret) - 11), 7):
            piece = secret[i : i + 11]
            if len(piece) == 11:
                assert piece not in haystack, "a piece of a secret leaked"


def assert_clean(text: str, *tokens: str) -> None:
    """No token, and no 11-character run of one, in ``text`` (the 6+4 hint has no such run)."""
    for raw in tokens:
        token = normalize(raw)
        assert token not in text
        for i in range(len(token) - 10):
            assert token[i : i + 11] not in text, f"characters {i}..{i + 11} of the token leaked"


def snapwatch_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The captured records of snapwatch and the libraries it drives, without the test backends' own log.

    The fake backends (loggers under ``snapwatch.tests``/``snapwatch.test``/``snapwatch.bench``) write
    the token into their log on purpose, as real backends do; pytest ≥ 9 captures their non-propagating
    loggers too, and those records are the input under test, not snapwatch's output.
    """
    return [r for r in caplog.records if not r.name.startswith(_BACKEND_LOGGERS)]


_BACKEND_LOGGERS = ("snapwatch.tests.", "snapwatch.test.", "snapwatch.bench.")
