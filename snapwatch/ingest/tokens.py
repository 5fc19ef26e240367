"""Token identity and forensics: normalisation, fingerprint, kind, defects; the configured token's shape. Pure."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from snapwatch.model import FindingCode, TokenKind

# Re-exported (the explicit "as" form): token identity is foundation, and ingest is where readers look for it.
from snapwatch.redact import fingerprint as fingerprint  # noqa: PLC0414
from snapwatch.redact import normalize as normalize  # noqa: PLC0414

log = logging.getLogger(__name__)

_BEARER = re.compile(r"(?i)^bearer\s+")
_B64URL = re.compile(r"^[A-Za-z0-9_-]+={0,2}$")
_OPAQUE = re.compile(r"^[A-Za-z0-9._~+/=-]{20,}$")


def _b64_json(part: str) -> dict[str, object] | None:
    if not _B64URL.match(part):
        return None
    try:
        decoded = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (binascii.Error, ValueError, RecursionError):
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


# ---------------------------------------------------------------------------------------------------------
# Inspection: what a raw value is and what is wrong with it.


class Defect(StrEnum):
    """Something wrong with the raw value that would reach the request as it is."""

    QUOTED = "quoted"
    WHITESPACE = "whitespace"  # surrounding spaces, tabs, CR or LF
    BEARER_PREFIX = "bearer-prefix"
    TRUNCATED = "truncated"
    BAD_CHARACTERS = "bad-characters"


DEFECT_FINDINGS: Mapping[Defect, FindingCode] = {
    Defect.QUOTED: FindingCode.TOKEN_QUOTED,
    Defect.WHITESPACE: FindingCode.TOKEN_WHITESPACE,
    Defect.BEARER_PREFIX: FindingCode.TOKEN_BEARER_PREFIX,
    Defect.TRUNCATED: FindingCode.TOKEN_MALFORMED,
    Defect.BAD_CHARACTERS: FindingCode.TOKEN_MALFORMED,
}

# The union of the JWT alphabet (base64url and dots) and the usual opaque-token alphabet.
_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9._~+/=-]*$")
# Length of an unpadded base64url HMAC signature: a shorter one was cut off.
_HMAC_SIGNATURE_CHARS = {"HS256": 43, "HS384": 64, "HS512": 86}


@dataclass(frozen=True, slots=True)
class TokenReport:
    """What a raw token value is, without the token: only its fingerprint and a 6+4 character hint.

    ``length`` is the length of the normalised token (what would be sent). ``nbf``/``exp`` are UTC
    datetimes from the claims, or None when absent (a Canvas S2S token has no ``exp``: it never expires
    by its claims). ``environment`` is ``PRODUCTION``/``STAGING`` from ``sub``, or None.
    """

    fingerprint: str
    kind: TokenKind
    header: dict[str, object]
    claims: dict[str, object]
    nbf: datetime | None
    exp: datetime | None
    environment: str | None
    length: int
    defects: tuple[Defect, ...]
    hint: str


def hint_of(token: str) -> str:
    """At most the first 6 and last 4 characters, fewer for short values, so the hint never gives it away."""
    head, tail = min(6, len(token) // 4), min(4, len(token) // 6)
    return token[:head] + "…" + (token[-tail:] if tail else "")


def _surface_defects(raw: str) -> list[Defect]:
    # Peels the layers in the order normalize() does, noting each one found.
    found: list[Defect] = []
    value = raw
    if value != value.strip():
        found.append(Defect.WHITESPACE)
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        found.append(Defect.QUOTED)
        value = value[1:-1]
        if value != value.strip() and Defect.WHITESPACE not in found:
            found.append(Defect.WHITESPACE)
        value = value.strip()
    if _BEARER.match(value):
        found.append(Defect.BEARER_PREFIX)
    return found


def _timestamp(value: object) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _signature_broken(token: str, header: Mapping[str, object]) -> bool:
    """True when the signature part is cut short or is not valid base64url (a JWT library cannot load it).

    Read as PyJWT 2.10+ reads it: at most two trailing ``=`` and then only at a length that is a multiple of
    four, only base64url characters, never a length of 4n+1, and canonical (the unused low bits of the last
    character are zero). Checked here rather than by decoding with a JWT library, which ``scan`` and
    ``token`` would otherwise import for this alone.
    """
    signature = token.rsplit(".", 1)[-1]
    expected = _HMAC_SIGNATURE_CHARS.get(str(header.get("alg")))
    if expected is not None and len(signature) < expected:
        return True
    if not _B64URL.fullmatch(signature):
        return True
    stripped = signature.rstrip("=")
    if (stripped != signature and len(signature) % 4) or len(stripped) % 4 == 1:
        return True
    decoded = base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    return base64.urlsafe_b64encode(decoded).rstrip(b"=") != stripped.encode("ascii")


def inspect(raw: str) -> TokenReport:
    """Decode and classify a raw value as the backend would send it. Pure; never verifies a signature.

    Surrounding quotes, whitespace and a ``Bearer `` prefix are defects (they would reach the request);
    Canvas S2S claims are the normal CAPI token and are no defect. TRUNCATED means a JWT whose parts do
    not decode, or whose signature part is cut short; BAD_CHARACTERS means characters outside the
    JWT/opaque alphabet after normalisation (inner whitespace, a second pair of quotes, non-ASCII).
    """
    token = normalize(raw)
    defects = _surface_defects(raw)
    kind = kind_of(raw)
    header: dict[str, object] = {}
    claims: dict[str, object] = {}
    if not _TOKEN_CHARS.match(token):
        defects.append(Defect.BAD_CHARACTERS)
    decoded = decode_parts(token)
    if decoded is not None:
        header, claims = decoded
        if _signature_broken(token, header):
            defects.append(Defect.TRUNCATED)
    elif kind is TokenKind.MALFORMED and Defect.BAD_CHARACTERS not in defects and _looks_like_jwt(token):
        defects.append(Defect.TRUNCATED)
    sub = claims.get("sub")
    environment = None
    if isinstance(sub, str):
        environment = next((env for env in ("PRODUCTION", "STAGING") if f"~{env}~" in sub), None)
    return TokenReport(
        fingerprint=fingerprint(raw),
        kind=kind,
        header=header,
        claims=claims,
        nbf=_timestamp(claims.get("nbf")),
        exp=_timestamp(claims.get("exp")),
        environment=environment,
        length=len(token),
        defects=tuple(defects),
        hint=hint_of(token),
    )


def _looks_like_jwt(token: str) -> bool:
    # A JWT header always starts "eyJ" ('{"' in base64url); two dots are the other giveaway.
    return token.startswith("eyJ") or token.count(".") == 2


# ---------------------------------------------------------------------------------------------------------
# The configured token as a value (``snapwatch.run.configured`` reads it from its source).


class Secret:
    """A value kept in memory only: its repr and str show the fingerprint, never the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The value itself: for the request that needs it, never for output."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret(fingerprint={fingerprint(self._value)})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(fingerprint(self._value))

    def __reduce__(self) -> str:
        # Refuse pickling: a pickled Secret would write the token to wherever the bytes go.
        raise TypeError("a Secret cannot be pickled")


@dataclass(frozen=True, slots=True)
class ConfiguredToken:
    """The token the backend is configured with, and where it came from.

    ``source`` reads like ``SNAP_ACCESS_TOKEN in /srv/app/.env``. ``path``/``mtime`` name the file the
    token came from (the .env or the token file; None for an environment variable). ``pixel`` is the
    ``pixel_key`` value from the .env (or, failing that, from the environment) when present.
    """

    raw: Secret
    source: str
    pixel: str | None = None
    path: Path | None = None
    mtime: datetime | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.raw.reveal())

    def report(self) -> TokenReport:
        return inspect(self.raw.reveal())
