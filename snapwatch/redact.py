"""The one redactor: every text that may leave the process passes ``redact`` (log records via ``RedactingFilter``)."""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"

# A JWT's header is base64url JSON, so it starts "eyJ" ('{"'). A cut or mangled one (fewer parts) is
# redacted too: a partial token is still a secret.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]+){0,2}")
# access_token=VALUE in a URL or form body (or percent-encoded: access_token%3DVALUE), and
# "access_token": "VALUE" in JSON or YAML; the key is kept.
_ACCESS_TOKEN = re.compile(r"""(?i)(access_token(?:%3D|["']?\s*[=:]\s*["']?))[^\s&"',;<>]+""")
# An opaque token in an Authorization header; 16+ characters so prose like "Bearer header" stays readable.
_BEARER = re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{16,}")


def redact(text: str) -> str:
    """``text`` with JWTs, ``access_token`` values and Bearer credentials replaced by ``[redacted]``."""
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    if "ccess_token" in text or "CCESS_TOKEN" in text:
        text = _ACCESS_TOKEN.sub(r"\1" + REDACTED, text)
    if "earer" in text or "EARER" in text:
        text = _BEARER.sub(r"\1" + REDACTED, text)
    return text


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
