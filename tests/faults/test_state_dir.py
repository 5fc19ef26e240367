"""The state directory is not trusted blindly: made 0700, refused when others control it, never followed as a link."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.helpers.cli import snapwatch_process
from tests.helpers.daemon import write_config
from tests.helpers.process import READY, DaemonProcess


def _run_briefly(config: Path) -> DaemonProcess:
    daemon = DaemonProcess(config)
    try:
        daemon.wait_for(READY, 30)
        code, _ = daemon.terminate()
    finally:
        if daemon.proc.poll() is None:
            daemon.kill()
    assert code == 0, daemon.output()
    return daemon


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_state_directory_is_created_0700_and_an_open_one_of_ours_is_tightened(tmp_path: Path) -> None:
    log = tmp_path / "capi.log"
    log.touch()
    fresh = tmp_path / "fresh" / "state"
    _run_briefly(write_config(tmp_path / "fresh.yaml", [log], fresh))
    assert _mode(fresh) == 0o700 and _mode(fresh / "state.db") == 0o600
    for mode in (0o755, 0o777):
        existing = tmp_path / f"existing-{mode:o}"
        existing.mkdir()
        existing.chmod(mode)
        daemon = _run_briefly(write_config(tmp_path / f"existing-{mode:o}.yaml", [log], existing))
        assert _mode(existing) == 0o700
        assert any("tightened to 0700" in line and str(existing) in line for line in daemon.lines), daemon.output()


def test_a_directory_others_control_is_refused_with_exit_78(tmp_path: Path) -> None:
    log = tmp_path / "capi.log"
    log.touch()
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp: others may create (or plant) files in it
    config = write_config(tmp_path / "config.yaml", [log], shared)
    done = snapwatch_process("run", "-c", str(config), timeout=60)
    assert done.returncode == 78, done.stderr
    assert "shared directory" in done.stderr and str(shared) in done.stderr
    assert list(shared.iterdir()) == []  # nothing created in it
    assert _mode(shared) == 0o1777  # and nothing changed


def test_a_symlink_planted_at_state_db_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    log = tmp_path / "capi.log"
    log.touch()
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    target = tmp_path / "elsewhere" / "passwd"
    target.parent.mkdir()
    (state / "state.db").symlink_to(target)
    config = write_config(tmp_path / "config.yaml", [log], state)
    for command in (("run",), ("status",), ("check-config",)):
        done = snapwatch_process(*command, "-c", str(config), timeout=60)
        assert done.returncode == 78, (command, done.stderr)
        assert "symbolic link" in done.stderr and "state.db" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert not target.exists()  # root did not create the file it points to


def test_a_symlinked_state_dir_gets_a_clear_answer(tmp_path: Path) -> None:
    log = tmp_path / "capi.log"
    log.touch()
    dangling = tmp_path / "state"
    dangling.symlink_to(tmp_path / "missing" / "state")
    config = write_config(tmp_path / "config.yaml", [log], dangling)
    done = snapwatch_process("run", "-c", str(config), timeout=60)
    assert done.returncode == 78, done.stderr
    assert "symbolic link" in done.stderr and "does not exist" in done.stderr, done.stderr
    assert "File exists" not in done.stderr
    real = tmp_path / "real-state"
    real.mkdir(mode=0o700)
    linked = tmp_path / "linked"
    linked.symlink_to(real)
    _run_briefly(write_config(tmp_path / "linked.yaml", [log], linked))  # a link to a real directory is used
    assert (real / "state.db").is_file()


def test_an_empty_state_file_is_named_in_a_warning_not_a_silent_reset(tmp_path: Path) -> None:
    log = tmp_path / "capi.log"
    log.touch()
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "state.db").touch(mode=0o600)
    daemon = _run_briefly(write_config(tmp_path / "config.yaml", [log], state))
    warned = [line for line in daemon.lines if "empty" in line and str(state / "state.db") in line]
    assert warned and "WARNING" in warned[0], daemon.output()
    again = _run_briefly(write_config(tmp_path / "config.yaml", [log], state))
    assert not any("empty" in line for line in again.lines)  # a file snapwatch wrote is not empty
