"""The error tree: every user-facing failure is a SnapwatchError carrying its exit code."""

from __future__ import annotations

EX_OK = 0
EX_RUNTIME = 1
EX_USAGE = 2
EX_LOCKED = 75  # sysexits.h EX_TEMPFAIL: another snapwatch holds the state directory; try again later
EX_CONFIG = 78  # sysexits.h EX_CONFIG: the systemd unit does not restart on it


class SnapwatchError(Exception):
    """A failure the user can act on; ``str(err)`` is the one-line message, without a traceback."""

    exit_code = EX_RUNTIME


class ConfigError(SnapwatchError):
    """The configuration is invalid; the message reads ``FILE:LINE:COL: dotted.key: message``."""

    exit_code = EX_CONFIG


class StateLockedError(SnapwatchError):
    """Another snapwatch runs on the same state directory; the message names its pid."""

    exit_code = EX_LOCKED


class SourceError(SnapwatchError):
    """A log source cannot be read."""


class NotifyError(SnapwatchError):
    """A notification target could not be reached or refused the message."""


class UsageError(SnapwatchError):
    """The command line is wrong."""

    exit_code = EX_USAGE
