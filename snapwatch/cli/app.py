"""The command line: argument parsing, exit codes, and human or JSON output for every command."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from snapwatch import __version__
from snapwatch.errors import EX_OK, EX_RUNTIME, EX_USAGE, SnapwatchError, UsageError


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage mistakes as a UsageError instead of exiting on its own."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # main() prefixes "snapwatch: " to every error line; a subcommand's name is kept ("scan: ...").
        prog = self.prog.removeprefix("snapwatch").strip()
        raise UsageError(f"{prog}: {message}" if prog else message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="snapwatch", description=__doc__)
    parser.add_argument("--version", action="version", version=f"snapwatch {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("-c", "--config", help="config file (default: $SNAPWATCH_CONFIG, /etc/snapwatch/config.yaml)")
        return p

    p = command("run", "follow the sources, detect, diagnose and alert until SIGTERM")
    p = command("scan", "read whole log files (rotated backups too) and report what happened")
    p.add_argument("--env-file", help="the backend's .env, to compare its token with the log's")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("files", nargs="+", metavar="FILE")
    p = command("diagnose", "inspect the configured token, the recent log and state; rank the likely causes")
    p.add_argument("--probe", action="store_true", help="also ask Snap's validate endpoint about the token")
    p.add_argument("--now", help="judge as of this ISO 8601 time instead of the clock")
    p.add_argument("--json", action="store_true")
    p = command("token", "decode and explain one token without printing it")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--env-file", help="read the token from this .env (key from the config, or SNAP_ACCESS_TOKEN)")
    src.add_argument("--stdin", action="store_true", help="read the token from standard input")
    p.add_argument("--json", action="store_true")
    command("check-config", "validate the config (every check run makes first); print it with secrets masked")
    command("test-alert", "send a test message to every configured target")
    p = command("status", "what the state holds: positions, counters, incidents, outbox")
    p.add_argument("--json", action="store_true")
    p = command("demo", "a self-contained live run: healthy traffic, a 401 streak, the alert, the recovery")
    p.add_argument("--fast", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None) -> int:
    """Run one command; returns the exit code. User mistakes print one line per error, never a traceback."""
    out = stdout or sys.stdout
    try:
        args = build_parser().parse_args(argv)
        from snapwatch.cli import commands  # noqa: PLC0415  (keeps `--help` fast)

        return commands.dispatch(args, out)
    except SnapwatchError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"snapwatch: {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`snapwatch scan --json … | head`): stop quietly, like any filter. Later
        # writes, and the interpreter's final flush, go to /dev/null instead of raising again.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        return EX_RUNTIME
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else (EX_OK if exc.code is None else EX_USAGE)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
