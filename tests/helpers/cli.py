"""Running snapwatch's commands: in this process through its entry point, or as a child process."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator

from snapwatch.cli.app import main
from tests.helpers.paths import ROOT


def run_cli(*argv: str, stdin: str | None = None) -> tuple[int, str, str]:
    """snapwatch's own entry point in this process; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.ExitStack() as stack:
        stack.enter_context(contextlib.redirect_stderr(err))
        if stdin is not None:
            stack.enter_context(_stdin(stdin))
        code = main(list(argv), stdout=out)
    return code, out.getvalue(), err.getvalue()


@contextlib.contextmanager
def _stdin(text: str) -> Iterator[None]:
    saved = sys.stdin
    sys.stdin = io.StringIO(text)
    try:
        yield
    finally:
        sys.stdin = saved


def scan_json(*argv: str) -> dict[str, object]:
    """What ``snapwatch scan --json ARGV`` prints, parsed; the command must succeed."""
    code, out, err = run_cli("scan", "--json", *argv)
    assert code == 0, err
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


def snapwatch_process(*args: str, timeout: float = 30.0,
                      env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m snapwatch ARGS`` as a child process in the repository root, stdin empty, output captured.

    ``env`` defaults to this process's environment with the repository on PYTHONPATH.
    """
    if env is None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "snapwatch", *args], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout, check=False)
