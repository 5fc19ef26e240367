"""Secrets: token identity by fingerprint, and the one redactor every outgoing or stored text passes.

Two lines of defence. By value: every token snapwatch has seen (in a URL, a header, the ``.env``, the
probe) and every target password is remembered, in memory only, and replaced wherever it turns up,
in any of the forms text gives it (as is, normalised, URL-encoded, JSON-escaped), by its label
``token 3f9a1c0b7d2e``. By shape, for values never seen: JWTs, ``access_token`` values, Bearer
credentials, and long random-looking runs of characters (a key in a URL path, a body, an event name).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from urllib.parse import quote, quote_plus

REDACTED = "[redacted]"
MIN_SECRET = 16  # shorter values are not remembered: a pixel id or a word must stay readable
_MAX_KNOWN = 4096  # forms remembered; a process that sees more starts again (tokens are few in practice)

_BEARER_PREFIX = re.compile(r"(?i)^bearer\s+")
# A JWT's header is base64url JSON, so it starts "eyJ" ('{"'). A cut or mangled one (fewer parts) is
# redacted too: a partial token is still a secret.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]+){0,2}")
# access_token=VALUE in a URL or form body (or percent-encoded: access_token%3DVALUE), and
# "access_token": "VALUE" in JSON or YAML; the key is kept, and so is a value already replaced by its label.
_ACCESS_TOKEN = re.compile(r"""(?i)(access_token(?:%3D|["']?\s*[=:]\s*["']?))(?!token [0-9a-f]{12})[^\s&"',;<>]+""")
# An opaque token in an Authorization header; 16+ characters so prose like "Bearer header" stays readable.
_BEARER = re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{16,}")
# A run of 33+ token characters (a URL path segment, a word in a body or an event name): masked when it
# looks random (see ``looks_random``: a UUID, a hex digest or a file name does not).
_RUN_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~+=-"
# The runs are found on a copy of the text in which every token character reads "a" and every other ASCII
# character " " (str.translate and str.find run in C): a regex scanning for them spends about 15 ns on
# every character of a snapshot the daemon writes with each batch, these spend under 1 ns.
_RUN_MARKS = str.maketrans({chr(c): "a" if chr(c) in _RUN_CHARS else " " for c in range(128)})
_MIN_RUN = "a" * 33
_RUN_END = re.compile(r"a*")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def normalize(raw: str) -> str:
    """The token as it would be sent: surrounding whitespace, one pair of quotes and ``Bearer `` removed."""
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1].strip()
    return _BEARER_PREFIX.sub("", value, count=1).strip()


def fingerprint(raw: str) -> str:
    """First 12 hex digits of SHA-256 over the normalised token (the contract's token identity)."""
    return hashlib.sha256(normalize(raw).encode("utf-8", "surrogateescape")).hexdigest()[:12]


def label(raw: str) -> str:
    """How a secret is shown: ``token 3f9a1c0b7d2e``."""
    return f"token {fingerprint(raw)}"


def looks_random(value: str) -> bool:
    """A long value that reads like a key rather than a name or an id: over 32 characters, digits, upper- and
    lower-case letters mixed (file and directory names rarely are), and not a UUID."""
    if len(value) <= 32 or _UUID.fullmatch(value):
        return False
    return any(c.isdigit() for c in value) and any(c.islower() for c in value) and any(c.isupper() for c in value)


class KnownSecrets:
    """The secret values this process has seen, each with every form text may give it, and its label."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._forms: dict[str, str] = {}  # form → label
        self._ordered: tuple[tuple[str, str], ...] = ()  # longest form first, so a longer one wins

    def add(self, value: str, shown_as: str | None = None, min_length: int = MIN_SECRET) -> None:
        """Remember ``value`` (shorter than ``min_length``: ignored); ``shown_as`` replaces its label."""
        core = normalize(value)
        if len(core) < min_length:
            return
        name = shown_as or label(core)
        forms = {value, value.strip(), core, quote(core, safe=""), quote_plus(core), json.dumps(core)[1:-1]}
        forms = {f for f in forms if len(f) >= min_length}
        with self._lock:
            if forms <= self._forms.keys():
                return
            if len(self._forms) + len(forms) > _MAX_KNOWN:
                self._forms.clear()
            self._forms.update((f, name) for f in forms)
            self._ordered = tuple(sorted(self._forms.items(), key=lambda item: len(item[0]), reverse=True))

    def replace(self, text: str) -> str:
        for form, name in self._ordered:
            if form in text:
                text = text.replace(form, name)
        return text

    def __len__(self) -> int:
        return len(self._forms)

    def clear(self) -> None:
        with self._lock:
            self._forms.clear()
            self._ordered = ()


SECRETS = KnownSecrets()


def _mask_random_runs(text: str) -> str:
    """``text`` with each maximal run of 33+ token characters that ``looks_random`` replaced by its label."""
    marks = text.translate(_RUN_MARKS)  # same length: one character for one (non-ASCII ones left as they are)
    start = marks.find(_MIN_RUN)
    if start < 0:
        return text
    pieces: list[str] = []
    done = 0
    end_of = _RUN_END.match
    while start >= 0:
        # ``start`` begins a run: the search resumed where the last run ended, on a non-token character
        end = end_of(marks, start + 33).end()  # type: ignore[union-attr]  # "a*" always matches
        value = text[start:end]
        if looks_random(value):
            pieces.append(text[done:start])
            pieces.append(label(value))
            done = end
        start = marks.find(_MIN_RUN, end)
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def redact(text: str) -> str:
    """``text`` with every known secret replaced by its label, then JWTs, ``access_token`` values and
    Bearer credentials by ``[redacted]``, and any other random-looking run of 33+ characters by its label."""
    if SECRETS._ordered:
        text = SECRETS.replace(text)
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    if "ccess_token" in text or "CCESS_TOKEN" in text:
        text = _ACCESS_TOKEN.sub(r"\1" + REDACTED, text)
    if "earer" in text or "EARER" in text:
        text = _BEARER.sub(r"\1" + REDACTED, text)
    return _mask_random_runs(text) if len(text) > 32 else text


class RedactingFilter(logging.Filter):
    """Rewrites each record's message, traceback and stack text through :func:`redact`; never drops a record.

    Defence in depth: the code logs fingerprints, never tokens, but a third-party exception message (a URL
    with ``access_token=`` in it, say) must not carry one into the log either. The record is rewritten in
    place (``args`` merged into ``msg``), so every handler after this one sees the redacted text too.
    """

    _traceback_formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            # A bad format string: leave it for the handler, which reports it without the caller crashing.
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._traceback_formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
