"""Help written for users (with an example per command), colour only where it helps, shell completion."""

from __future__ import annotations

import io
import shutil
import subprocess

import pytest

from snapwatch.cli.app import main
from snapwatch.cli.parser import build_parser
from snapwatch.cli.style import colourize, wanted
from tests.helpers import cli
from tests.helpers.paths import DATA

LOG = str(DATA / "scenarios" / "revoked" / "backend.log")
COMMANDS = ("run", "scan", "diagnose", "token", "check-config", "test-alert", "status", "report", "demo",
            "completion")


def test_the_top_help_speaks_to_users_and_shows_examples() -> None:
    text = build_parser().format_help()
    assert "snapwatch follows your backend's Snapchat Conversions API log" in text
    assert "argument parsing" not in text and "exit codes, and human" not in text  # no developer docstring
    assert "examples:\n  snapwatch demo" in text
    for name in COMMANDS:
        assert f"\n    {name}" in text, name


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_an_example(name: str) -> None:
    done = cli.snapwatch_process(name, "--help")
    assert done.returncode == 0, done.stderr
    assert f"example:\n  snapwatch {name}" in done.stdout


def test_colour_always_never_and_no_color() -> None:
    plain = cli.run_cli("scan", "--color", "never", LOG)[1]
    coloured = cli.run_cli("--color", "always", "scan", LOG)[1]
    assert "\033[" not in plain and "\033[1mVerdict:\033[0m" in coloured
    assert coloured.replace("\033[1m", "").replace("\033[31m", "").replace("\033[33m", "").replace(
        "\033[32m", "").replace("\033[0m", "") == plain  # colour adds escapes, changes nothing else
    assert not wanted("auto", io.StringIO(), {})  # not a terminal

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert wanted("auto", Terminal(), {"TERM": "xterm"})
    assert not wanted("auto", Terminal(), {"NO_COLOR": "1"})
    assert not wanted("auto", Terminal(), {"TERM": "dumb"})
    assert wanted("always", io.StringIO(), {"NO_COLOR": "1"})  # asked for explicitly
    assert colourize("Verdict:\n  x (critical, high confidence)") == (
        "\033[1mVerdict:\033[0m\n  x (\033[31mcritical\033[0m, high confidence)")


def test_json_is_never_coloured() -> None:
    out = cli.run_cli("--color", "always", "scan", "--json", LOG)[1]
    assert "\033[" not in out


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_scripts_know_every_command(shell: str) -> None:
    stdout = io.StringIO()
    assert main(["completion", shell], stdout=stdout) == 0
    script = stdout.getvalue()
    for name in COMMANDS:
        assert name in script, name
    if shell == "bash" and shutil.which("bash"):
        subprocess.run(["bash", "-n"], input=script, text=True, check=True)  # it parses as bash
