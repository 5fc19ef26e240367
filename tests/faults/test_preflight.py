"""What `run` refuses, `check-config` refuses too, the same way: exit 78 with the place, so systemd stops retrying."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers.cli import snapwatch_process

PLACE = re.compile(r"^snapwatch: (?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<key>[^:]+): (?P<why>.+)$")


def _shared_dir(tmp_path: Path) -> Path:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp: anyone may create files in it
    return shared


CASES = {
    "empty file": (lambda tmp: "", "sources", 1),
    "no sources": (lambda tmp: "sources: []\n", "sources", 1),
    "a URL apprise cannot load": (lambda tmp: f"sources:\n  - path: {tmp / 'capi.log'}\n"
                                  "alerts:\n  urls:\n    - nosuchscheme://somewhere/hook\n", "alerts.urls[0]", 5),
    "an address that cannot be": (lambda tmp: f"sources:\n  - path: {tmp / 'capi.log'}\n"
                                  "metrics:\n  listen: 999.1.1.1:99999\n", "metrics.listen", 4),
    "an address that does not resolve": (lambda tmp: f"sources:\n  - path: {tmp / 'capi.log'}\n"
                                         "metrics:\n  listen: 999.1.1.1:9464\n", "metrics.listen", 4),
    "a state directory others can write": (lambda tmp: f"sources:\n  - path: {tmp / 'capi.log'}\n"
                                           f"state_dir: {_shared_dir(tmp)}\n", "state_dir", 3),
}


@pytest.mark.parametrize("case", list(CASES))
def test_check_config_and_run_refuse_alike_with_exit_78_and_the_place(tmp_path: Path, case: str) -> None:
    text, key, line = CASES[case]
    config = tmp_path / "config.yaml"
    body = text(tmp_path)
    if "state_dir" not in body and body:
        body += f"state_dir: {tmp_path / 'state'}\n"
    config.write_text(body, encoding="utf-8")
    checked = snapwatch_process("check-config", "-c", str(config))
    ran = snapwatch_process("run", "-c", str(config), timeout=60)
    for done in (checked, ran):
        assert done.returncode == 78, (done.args, done.returncode, done.stderr)
        assert "Traceback" not in done.stderr
        found = [m for m in map(PLACE.match, done.stderr.splitlines()) if m is not None]
        assert found, done.stderr
        assert (found[0]["file"], found[0]["key"], int(found[0]["line"])) == (str(config), key, line), done.stderr
    assert checked.stderr == ran.stderr  # one list of checks: what one says, the other says
    assert checked.stdout == ""  # nothing printed as if it were valid
    assert not (tmp_path / "state").exists()  # refused before anything was created
