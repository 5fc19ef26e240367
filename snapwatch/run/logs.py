"""Log output: the journal's priority-prefixed format or a timestamped one, every record redacted."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TextIO

from snapwatch.redact import RedactingFilter

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOURNAL_FORMAT = "%(name)s: %(message)s"
def syslog_priority(levelno: int) -> int:
    """The sd-daemon priority for a logging level: DEBUG 7, INFO 6, WARNING 4, ERROR 3, CRITICAL 2."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


class JournalFormatter(logging.Formatter):
    """``<N>name: message`` on exactly one line; journald adds the timestamp and reads the priority.

    Line breaks (in the message or a traceback) become a literal ``\\n``, because journald would make each
    physical line a separate entry at the default priority.
    """

    def __init__(self) -> None:
        super().__init__(JOURNAL_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record).replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
        return f"<{syslog_priority(record.levelno)}>{text}"


def is_journal_stream(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """True when ``JOURNAL_STREAM`` is set and (if ``stream`` has a file descriptor) names that very stream.

    systemd sets ``JOURNAL_STREAM=DEV:INODE`` for a service whose output goes to the journal; a process
    started from such a service with its stderr elsewhere (a terminal) inherits the variable, and the check
    of device and inode keeps it from printing ``<6>`` prefixes there. A stream without a descriptor (an
    in-memory buffer) trusts the variable.
    """
    value = environ.get("JOURNAL_STREAM", "")
    if not value:
        return False
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return True
    dev, _, ino = value.partition(":")
    try:
        st = os.fstat(fd)
        return (int(dev), int(ino)) == (st.st_dev, st.st_ino)
    except (OSError, ValueError):
        return False


class _Handler(logging.StreamHandler[TextIO]):
    """The stream handler :func:`setup_logging` owns (its type is how a second call finds it)."""


def setup_logging(
    level: int | str,
    stream: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> logging.Handler:
    """Send every log record at ``level`` or above to ``stream`` (default: sys.stderr at call time).

    Journal format when :func:`is_journal_stream`, else ``PLAIN_FORMAT``; the handler always carries a
    :class:`RedactingFilter`. Calling it again replaces the handler it installed before (a reload may change
    the level), leaving other handlers on the root logger alone. Returns the installed handler.
    """
    out = sys.stderr if stream is None else stream
    env = os.environ if environ is None else environ
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, _Handler):
            root.removeHandler(old)
    handler = _Handler(out)
    handler.setFormatter(
        JournalFormatter() if is_journal_stream(out, env) else logging.Formatter(PLAIN_FORMAT)
    )
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(level)
    # watchfiles logs every change it sees at INFO: on a busy log that would flood the journal.
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
    return handler
