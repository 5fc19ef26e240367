"""Config loading: defaults, the example file, ${ENV} expansion and one-line FILE:LINE:COL errors."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from snapwatch.cli.app import main
from snapwatch.config import Config, format_duration, load_config, parse_config, parse_duration
from snapwatch.errors import EX_CONFIG, ConfigError
from tests.helpers.cli import snapwatch_process
from tests.helpers.paths import ROOT


def test_example_config_loads_and_matches_the_defaults() -> None:
    config = load_config(ROOT / "config.example.yaml", environ={})
    assert config.sources[0].path == "/var/log/app/snap_conversions_api.log"
    # The example documents the defaults: apart from the example source, it must equal Config().
    assert dataclasses.replace(config, sources=[]) == Config()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sources:\n  - path: /x.log\n    formt: backend\n", "cfg.yaml:3:5: sources[0].formt: unknown key"),
        ("rules:\n  auth_failures:\n    streak: 0\n", "cfg.yaml:3:13: rules.auth_failures.streak: "),
        ("alerts:\n  group_wait: 5x\n", "cfg.yaml:2:15: alerts.group_wait: '5x' is not a duration"),
        ("sources:\n  - format: jsonl\n", "cfg.yaml:2:5: sources[0].path: required key is missing"),
        ("probe:\n  enabled: maybe\n", "cfg.yaml:2:12: probe.enabled: "),
        ("rules:\n  error_rate:\n    threshold: 1.5\n", "cfg.yaml:3:16: rules.error_rate.threshold: "),
        ("sources:\n  - path: /x\n    start_at: middle\n", "cfg.yaml:3:15: sources[0].start_at: "),
        ("alerts: [1, 2\n", "cfg.yaml:2:1: (yaml): "),
        ("state_dir: /a\nstate_dir: /b\n", "cfg.yaml:2:1: state_dir: duplicate key"),
        ("- just\n- a list\n", "cfg.yaml:1:1: (top): expected a mapping"),
        ("alerts:\n  timeout: 99999999999999d\n", "cfg.yaml:2:12: alerts.timeout: '99999999999999d' is not a "),
        ("alerts:\n  timeout: .inf\n", "cfg.yaml:2:12: alerts.timeout: inf is not a duration snapwatch can use"),
        ("state_dir: 2025-13-01\n", "cfg.yaml:1:12: state_dir: cannot read this value: month must be in 1..12"),
        ("sources:\n  - path: /x\n    timezone: Mars/Olympus\n",
         "cfg.yaml:3:15: sources[0].timezone: unknown time zone 'Mars/Olympus'"),
        ("sources:\n  - path: /x\n    format: regex\n    pattern: '(?P<ts>'\n",
         "cfg.yaml:4:14: sources[0].pattern: not a valid regular expression"),
        ("sources:\n  - path: /x\n    format: regex\n    pattern: '(?P<ts>\\S+)'\n",
         "cfg.yaml:4:14: sources[0].pattern: needs the named groups status"),
        ("sources:\n  - path: /x\n    format: regex\n", "cfg.yaml:2:5: sources[0]: the regex format needs a pattern"),
        ("rules:\n  auth_failures:\n    streak: 0\n", "cfg.yaml:3:13: rules.auth_failures.streak: must be at least 1"),
        ("sources:\n  - path: /x\n    pairing_timeout: 0s\n",
         "cfg.yaml:3:22: sources[0].pairing_timeout: must be more than 0ms"),
        ("alerts:\n  inhibit_rules:\n    - source_rules: [error-rate]\n      target_rules: [error-rate]\n",
         "cfg.yaml:3:7: alerts.inhibit_rules[0]: a rule cannot inhibit itself: error-rate"),
        ("rules:\n  auth_failure:\n    streak: 1\n", "cfg.yaml:2:3: rules.auth_failure: unknown key; did you mean "
         "'auth_failures'?"),
    ],
)
def test_each_mistake_is_one_line_with_its_position(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "cfg.yaml", environ={})
    message = str(info.value)
    assert message.startswith(expected), message
    assert "\n" not in message
    assert info.value.exit_code == EX_CONFIG


def test_several_mistakes_are_all_reported_in_file_order() -> None:
    text = "rules:\n  silence:\n    after: soon\nstate_dir: [1]\nbogus: 1\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, "c.yaml", environ={})
    lines = str(info.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == ["rules.silence.after", "state_dir", "bogus"]
    assert lines[0].startswith("c.yaml:3:12:")


def test_environment_references_are_expanded_and_missing_ones_named() -> None:
    text = "alerts:\n  urls:\n    - ${HOOK}\n"
    config = parse_config(text, "c.yaml", environ={"HOOK": "json://127.0.0.1:9/x"})
    assert config.alerts.urls == ["json://127.0.0.1:9/x"]
    with pytest.raises(ConfigError, match=r"^c\.yaml:3:7: alerts\.urls\[0\]: environment variable HOOK"):
        parse_config(text, "c.yaml", environ={})


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("5m", 300), ("1h", 3600), ("1d", 86400), ("250ms", 0.25), (12, 12)]
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert parse_duration(format_duration(parse_duration(text))) == timedelta(seconds=seconds)


def test_check_config_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(f"sources:\n  - path: {tmp_path / 'capi.log'}\nstate_dir: {tmp_path / 'state'}\n"
                    "alerts:\n  urls: ['json://user:hunter22secret@127.0.0.1:9/hook']\n")
    assert main(["check-config", "-c", str(good)]) == 0
    out = capsys.readouterr().out
    assert "hunter22secret" not in out
    assert "group_wait: 1s" in out  # the effective defaults are printed
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  auth_failures:\n    streek: 3\n")
    assert main(["check-config", "-c", str(bad)]) == EX_CONFIG
    err = capsys.readouterr().err
    assert err == f"snapwatch: {bad}:3:5: rules.auth_failures.streek: unknown key; did you mean 'streak'?\n"


def test_missing_config_file_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "-c", str(tmp_path / "nope.yaml")]) == EX_CONFIG
    assert "cannot read" in capsys.readouterr().err


def test_a_yaml_alias_bomb_and_deep_nesting_are_positioned_errors_at_once() -> None:
    bomb = 'a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]\n' + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True))
    with pytest.raises(ConfigError, match=r"^c\.yaml:\d+:\d+: \S+: the file expands to more than 10000 values"):
        parse_config(bomb, "c.yaml", {})
    with pytest.raises(ConfigError, match=r"^c\.yaml:1:1: \(yaml\): nested more than 32 levels deep"):
        parse_config("x: " + "[" * 5000 + "]" * 5000, "c.yaml", {})
    with pytest.raises(ConfigError, match=r"larger than 1024 KiB"):
        parse_config("# " + "x" * (1 << 20), "c.yaml", {})
    fine = 'base: &b "/var/log/app/capi.log"\n'  # an alias used as an alias is meant: within the budget
    with pytest.raises(ConfigError, match="base: unknown key"):
        parse_config(fine + "sources:\n  - path: *b\n", "c.yaml", {})


@pytest.mark.parametrize(("text", "line"), [
    ("alerts:\n  group_wiat: 1s\n", "cfg.yaml:2:3: alerts.group_wiat: unknown key; did you mean 'group_wait'?"),
    ("sources:\n  - path: /x\n    timezon: UTC\n",
     "cfg.yaml:3:5: sources[0].timezon: unknown key; did you mean 'timezone'?"),
    ("rulez: {}\n", "cfg.yaml:1:1: rulez: unknown key; did you mean 'rules'?"),
    ("alerts:\n  frobnicate: 1\n", "cfg.yaml:2:3: alerts.frobnicate: unknown key"),  # nothing close: no guess
    ("alerts:\n  urls: []\n   group_wait: 1s\n",
     "cfg.yaml:3:4: (yaml): this line is indented differently from the keys above it: line it up with its section"),
    ("alerts:\n  urls: foo\n    group_wait: 1s\n", "cfg.yaml:3:15: (yaml): a 'key:' where a value goes: is this line "
     "indented under a value? Line it up with the keys of its section"),
    ("sources\n  - path: x\n", "cfg.yaml:1:8: (yaml): 'sources' needs a ':' after it (a key and its value)"),
    ("alerts:\n\tgroup_wait: 1s\n", "cfg.yaml:2:1: (yaml): a tab character: indent with spaces"),
    ('alerts:\n  urls: ["a", "b"\n  group_wait: 1s\n',
     "cfg.yaml:3:3: (yaml): a [list] or {mapping} above is not closed, or misses a comma"),
])
def test_mistakes_are_said_in_plain_words_at_their_place(text: str, line: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(text, "cfg.yaml", {})
    assert str(raised.value) == line


def test_check_config_warns_of_what_is_not_there_yet_and_strict_refuses(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("OTHER_KEY=x\n")
    config = tmp_path / "config.yaml"
    config.write_text(f"sources:\n  - path: {tmp_path}/capi.log\n  - path: {tmp_path}/logs/*.log\n"
                      f"token:\n  env_file: {env}\nstate_dir: {tmp_path}/state\n")
    done = snapwatch_process("check-config", "-c", str(config))
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        f"snapwatch: warning: {config}:2:11: sources[0].path: {tmp_path}/capi.log does not exist yet: "
        "snapwatch waits for it to appear",
        f"snapwatch: warning: {config}:3:11: sources[1].path: {tmp_path}/logs/*.log matches no file yet: "
        "snapwatch waits for it to appear",
        f"snapwatch: warning: {config}:5:13: token.env_file: {env} has no SNAP_ACCESS_TOKEN (token.key): check the "
        "key's name",
        f"snapwatch: warning: {config}:6:12: state_dir: {tmp_path}/state does not exist yet: "
        "`snapwatch run` creates it",
    ]
    assert not (tmp_path / "state").exists()  # checking creates nothing
    strict = snapwatch_process("check-config", "--strict", "-c", str(config))
    assert strict.returncode == EX_CONFIG
    assert strict.stderr.splitlines()[-1] == "snapwatch: 4 warning(s), and --strict makes them errors"
    env.unlink()
    missing = snapwatch_process("check-config", "-c", str(config))
    assert (f"snapwatch: warning: {config}:5:13: token.env_file: {env} does not exist: the diagnosis cannot "
            "compare the backend's token with the one it is configured with") in missing.stderr.splitlines()


def test_commands_without_a_config_file_start_without_pydantic_yaml_or_a_jwt_library(tmp_path: Path) -> None:
    # What makes --help, token and scan start fast: the config is plain dataclasses until a file is read.
    log = tmp_path / "empty.log"
    log.touch()
    probe = ("import sys, runpy; sys.argv = ['snapwatch', *sys.argv[1:]]\n"
             "try:\n    runpy.run_module('snapwatch', run_name='__main__')\nexcept SystemExit:\n    pass\n"
             "heavy = sorted(m for m in ('pydantic', 'yaml', 'jwt') if m in sys.modules)\n"
             "print('heavy:', ','.join(heavy), file=sys.stderr)")
    for argv in (["--help"], ["token", "--stdin"], ["scan", "--json", str(log)]):
        done = subprocess.run([sys.executable, "-c", probe, *argv], input="", capture_output=True, text=True,
                              cwd=ROOT, check=False, timeout=60)
        assert "heavy: \n" in done.stderr, (argv, done.stderr)
