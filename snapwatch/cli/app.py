"""The command line's entry point: parse, run one command, turn every outcome into an exit code."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Sequence
from typing import TextIO, cast

from snapwatch.cli.parser import build_parser
from snapwatch.errors import EX_OK, EX_RUNTIME, EX_USAGE, SnapwatchError
from snapwatch.redact import redact


class RedactingStream(io.TextIOBase):
    """A text stream that passes every write through the one redactor before ``target`` sees it.

    Commands write whole lines, whole documents, or JSON chunk by chunk (each string in one chunk), so a
    secret is never split between writes.
    """

    def __init__(self, target: TextIO) -> None:
        self.target = target

    def write(self, text: str) -> int:
        self.target.write(redact(text))
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def fileno(self) -> int:
        return self.target.fileno()

    def isatty(self) -> bool:
        return self.target.isatty()


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None) -> int:
    """Run one command; returns the exit code. User mistakes print one line per error, never a traceback."""
    out = cast(TextIO, RedactingStream(stdout or sys.stdout))
    try:
        args = build_parser().parse_args(argv)
        from snapwatch.cli import commands  # noqa: PLC0415  (keeps `--help` fast)

        return commands.dispatch(args, out)
    except SnapwatchError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(redact(f"snapwatch: {line}"), file=sys.stderr)
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
