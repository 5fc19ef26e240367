"""Token identity: normalisation, fingerprint and kind. Never returns or logs a token."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re

from snapwatch.model import TokenKind

_BEARER = re.compile(r"(?i)^bearer\s+")
_B64URL = re.compile(r"^[A-Za-z0-9_-]+={0,2}$")
_OPAQUE = re.compile(r"^[A-Za-z0-9._~+/=-]{20,}$")


def normalize(raw: str) -> str:
    """The token as it would be sent: surrounding whitespace, one pair of quotes and ``Bearer `` removed."""
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1].strip()
    return _BEARER.sub("", value, count=1).strip()


def fingerprint(raw: str) -> str:
    """First 12 hex digits of SHA-256 over the normalised token (the contract's token identity)."""
    return hashlib.sha256(normalize(raw).encode("utf-8", "surrogateescape")).hexdigest()[:12]


def _b64_json(part: str) -> dict[str, object] | None:
    if not _B64URL.match(part):
        return None
    try:
        decoded = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (binascii.Error, ValueError):
        return None
    return decoded if isinstance(decoded, dict) else None


def decode_parts(token: str) -> tuple[dict[str, object], dict[str, object]] | None:
    """Header and claims of a three-part JWT, or None when it does not decode. The signature is ignored."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[2]:
        return None
    header, claims = _b64_json(parts[0]), _b64_json(parts[1])
    if header is None or claims is None:
        return None
    return header, claims


def kind_of(raw: str) -> TokenKind:
    """Classify a token by shape and claims alone (a Canvas S2S JWT is the normal CAPI token)."""
    token = normalize(raw)
    decoded = decode_parts(token)
    if decoded is None:
        # A JWT's header always starts "eyJ" ('{"' in base64): one that fails to decode was cut or mangled.
        if token.startswith("eyJ") or token.count(".") == 2 or not _OPAQUE.match(token):
            return TokenKind.MALFORMED
        return TokenKind.OPAQUE
    header, claims = decoded
    if header.get("kid") == "CanvasS2SHMACProd" or claims.get("iss") == "canvas-s2stoken":
        sub = claims.get("sub")
        if isinstance(sub, str) and "~STAGING~" in sub:
            return TokenKind.CANVAS_S2S_STAGING
        return TokenKind.CANVAS_S2S
    return TokenKind.JWT_OTHER
