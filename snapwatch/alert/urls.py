"""Target URLs as people see them: masked for display, and which of their parts are secrets to scrub."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from snapwatch.redact import redact

MASK = "…"
_PLAIN_HOST = re.compile(r"[a-z][a-z-]*|[a-z0-9-]+(?:\.[a-z0-9-]+)+")  # a name or a dotted domain
_REASON_MAX = 300


# --- secrets in URLs -------------------------------------------------------------------------------------


def _plain_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return _PLAIN_HOST.fullmatch(host) is not None
    return True


def mask_url(url: str) -> str:
    """``url`` for display: scheme, host and port kept; user info, path and query values become ``…``.

    A host that looks like a token rather than a name (Telegram bot tokens, Slack team ids) is masked too.
    """
    scheme = url.split("://", 1)[0] if "://" in url else ""
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return f"{scheme}://{MASK}" if scheme else MASK
    if not parts.scheme:
        return MASK
    shown = (f"[{host}]" if ":" in host else host) if _plain_host(host) else (MASK if host else "")
    out = f"{parts.scheme}://" + (f"{MASK}@" if parts.username or parts.password else "") + shown
    out += f":{port}" if port else ""
    out += f"/{MASK}" if parts.path.strip("/") else ""
    query = parse_qsl(parts.query, keep_blank_values=True)
    out += ("?" + "&".join(f"{key}={MASK}" for key, _ in query)) if query else ""
    return out


def url_secrets(url: str) -> tuple[str, ...]:
    """The parts of ``url`` that may be secret (password, user, path segments, query values), longest first."""
    found = {url, url.strip()}
    pieces: list[str] = []
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        if parts.password:
            found.add(parts.password)
        pieces += [parts.username or "", *parts.path.split("/"), *(v for _, v in parse_qsl(parts.query))]
        if not _plain_host(host):
            pieces += [host, parts.netloc]
    except ValueError:
        pieces += re.split(r"[/:@?&=]+", url)
    # Short pieces ("hook", "v2") are not secrets, and scrubbing them would garble every reason.
    found.update(p for p in pieces if len(p) >= 6)
    found.update({unquote(s) for s in found} | {quote(s, safe="") for s in found})
    return tuple(sorted((s for s in found if len(s) >= 3), key=len, reverse=True))


def passwords(url: str) -> list[str]:
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return []
    found = [parts.password or ""] + [v for k, v in parse_qsl(parts.query) if k.lower() in _SECRET_KEYS]
    return [unquote(s) for s in found if s]


_SECRET_KEYS = {"pass", "password", "pwd", "secret", "token", "key", "apikey", "api_key"}


def scrub(text: str, secrets: Sequence[str]) -> str:
    """``text`` on one line, with every secret masked, tokens redacted, and at most 300 characters."""
    for secret in secrets:
        text = text.replace(secret, MASK)
    text = " ".join(redact(text).split())
    return text if len(text) <= _REASON_MAX else text[: _REASON_MAX - 1] + MASK


# --- targets ---------------------------------------------------------------------------------------------
