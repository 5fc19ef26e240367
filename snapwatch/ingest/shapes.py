"""Requests and exchanges built from logged parts: URL fields, tokens seen (as fingerprints), token placement,
cheap slot-filling constructors."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from snapwatch.ingest.tokens import TokenReport, fingerprint, inspect, normalize
from snapwatch.model import Api, Exchange, Placement, Request, Response, TokenKind
from snapwatch.redact import SECRETS, label, looks_random

UrlFields = tuple[Api, str, str | None, str | None, TokenKind | None]  # api, path, pixel, token fp, kind
RequestFields = tuple[Api, str, str | None, Placement, str | None, TokenKind | None]


# A frozen dataclass's generated __init__ sets every field through object.__setattr__, and a scan builds
# a Request, a Response and an Exchange per logged exchange: that was a fifth of the hot loop's time.
# These factories make the very same objects (same class, equal and hashable as before) by filling the
# slots through their descriptors, 40% cheaper. Should a class gain a field or a __post_init__, its
# factory falls back to the plain constructor, which stays correct, only slower.
_new = object.__new__


def _slot_setters(cls: type, names: tuple[str, ...]) -> tuple[Any, ...] | None:
    if tuple(f.name for f in fields(cls)) != names or hasattr(cls, "__post_init__"):
        return None
    return tuple(getattr(cls, name).__set__ for name in names)


_REQUEST_SETTERS = _slot_setters(
    Request, ("at", "event", "api", "path", "pixel", "placement", "token_fp", "token_kind")
)
_RESPONSE_SETTERS = _slot_setters(Response, ("at", "event", "status", "body"))
_EXCHANGE_SETTERS = _slot_setters(Exchange, ("response", "request", "source"))


def new_request(at: datetime, event: str, f: RequestFields) -> Request:
    """``Request(at, event, *f)``."""
    if _REQUEST_SETTERS is None:
        return Request(at, event, *f)
    s_at, s_event, s_api, s_path, s_pixel, s_placement, s_fp, s_kind = _REQUEST_SETTERS
    req: Request = _new(Request)
    s_at(req, at)
    s_event(req, event)
    s_api(req, f[0])
    s_path(req, f[1])
    s_pixel(req, f[2])
    s_placement(req, f[3])
    s_fp(req, f[4])
    s_kind(req, f[5])
    return req


def new_exchange(at: datetime, event: str, status: int | None, body: str, request: Request | None,
                 source: str) -> Exchange:
    """``Exchange(Response(at, event, status, body), request, source)``."""
    if _RESPONSE_SETTERS is None or _EXCHANGE_SETTERS is None:
        return Exchange(Response(at, event, status, body), request, source)
    s_at, s_event, s_status, s_body = _RESPONSE_SETTERS
    s_response, s_request, s_source = _EXCHANGE_SETTERS
    resp: Response = _new(Response)
    s_at(resp, at)
    s_event(resp, event)
    s_status(resp, status)
    s_body(resp, body)
    ex: Exchange = _new(Exchange)
    s_response(ex, resp)
    s_request(ex, request)
    s_source(ex, source)
    return ex


def url_parts(url: str) -> tuple[Api, str, str | None, str | None]:
    """A logged request URL's API, path (no query), v3 pixel id and raw ``access_token`` (None when absent)."""
    try:
        parts = urlsplit(url)
        path, query = parts.path, parts.query
    except ValueError:
        path, query = url.partition("?")[0], url.partition("?")[2]
    api = Api.V3 if path.startswith("/v3/") else Api.V2 if path.startswith("/v2/") else Api.UNKNOWN
    segments = path.split("/")
    if any(looks_random(s) for s in segments):
        # A key where an id or a word belongs (a token in the pixel slot, a token in the path): remembered
        # as a secret and replaced by its label, here at the source, so no later stage holds the value.
        for s in segments:
            if looks_random(s):
                SECRETS.add(s)
        segments = [label(s) if looks_random(s) else s for s in segments]
        path = "/".join(segments)
    pixel = segments[2] or None if api is Api.V3 and len(segments) > 2 else None
    for item in query.split("&"):
        key, _, value = item.partition("=")
        if unquote(key) == "access_token":
            return api, path, pixel, unquote(value)
    return api, path, pixel, None


class PendingRequest:
    """A request waiting for its response: mutable while its block is still being read."""

    __slots__ = ("api_hint", "at", "auth", "event", "headers_seen", "url")

    def __init__(self, at: datetime, event: str, api_hint: str) -> None:
        self.at, self.event, self.api_hint = at, event, api_hint
        self.url: UrlFields | None = None
        self.auth: tuple[str | None, TokenKind | None] | None = None  # Authorization header seen
        self.headers_seen = False


def api_key(req: PendingRequest) -> str:
    """The API a request counts under: its URL's, else its header's hint, else "unknown"."""
    if req.url is not None and req.url[0] is not Api.UNKNOWN:
        return req.url[0].value
    return req.api_hint if req.api_hint in ("v2", "v3") else "unknown"


def build_request(req: PendingRequest) -> Request:
    """The finished request; the token's placement is the query, else the header, else none or unknown."""
    if req.url is not None:
        api, path, pixel, fp, kind = req.url
    else:
        api, path, pixel, fp, kind = Api.UNKNOWN, "", None, None, None
    if api is Api.UNKNOWN and req.api_hint in ("v2", "v3"):
        api = Api(req.api_hint)
    if fp is not None:
        placement = Placement.QUERY
    elif req.auth is not None:
        placement = Placement.HEADER
        fp, kind = req.auth
    elif req.headers_seen or api is Api.V3:
        placement = Placement.NONE
    else:
        placement = Placement.UNKNOWN
    return new_request(req.at, req.event, (api, path, pixel, placement, fp, kind))


class TokenBook:
    """The tokens seen in requests, by fingerprint; the tokens themselves are not kept.

    ``kinds`` maps each fingerprint to its kind, ``reports`` to what the token is (claims, defects;
    no token inside); ``in_log`` is whether any request carried a token.
    """

    __slots__ = ("_urls", "in_log", "kinds", "reports")

    def __init__(self) -> None:
        self.kinds: dict[str, TokenKind] = {}
        self.reports: dict[str, TokenReport] = {}
        self.in_log = False
        self._urls: dict[bytes, UrlFields] = {}

    def token(self, raw: str) -> tuple[str | None, TokenKind | None]:
        """A token as logged → its fingerprint and kind ((None, None) when it is blank)."""
        if not normalize(raw):
            return None, None
        SECRETS.add(raw)  # from now on this value is shown as its label wherever it turns up
        fp = fingerprint(raw)
        kind = self.kinds.get(fp)
        if kind is None:  # first sight of this token: inspect it once (claims, defects; never the token)
            report = self.reports[fp] = inspect(raw)
            kind = self.kinds[fp] = report.kind
        self.in_log = True
        return fp, kind

    def header(self, value: str) -> tuple[str | None, TokenKind | None]:
        """An Authorization header value → its token's fingerprint and kind ((None, None) when masked)."""
        value = value.strip()
        return (None, None) if _masked(normalize(value)) else self.token(value)

    def url(self, raw: bytes) -> UrlFields:
        """A request URL as logged → its fields, the token as a fingerprint."""
        # Keyed by the URL as logged (it holds the token): private, a handful of entries, never shown.
        hit = self._urls.get(raw)
        if hit is not None:
            return hit
        api, path, pixel, token = url_parts(raw.decode("utf-8").strip())
        fields = (api, path, pixel, *((None, None) if token is None else self.token(token)))
        if len(self._urls) >= 16:
            self._urls.clear()
        self._urls[raw] = fields
        return fields


def _masked(value: str) -> bool:
    return not value or "*" in value or "…" in value or "..." in value
