"""A throwaway Debian 12 machine booted with systemd-nspawn, for the tests that need systemd as PID 1.

The root is made once with debootstrap and cached outside the repository (``$SNAPWATCH_TEST_CACHE``, else
``$XDG_CACHE_HOME/snapwatch-test``, else ``/var/cache/snapwatch-test``); it is rebuilt when missing or
when the package list below changes. Each run boots an overlay of it (a plain copy where overlayfs cannot
be mounted), so the cached root is never changed and a run leaves nothing behind. Commands run inside
with ``nsenter`` into all namespaces of the machine's PID 1, with a clean environment.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# sudo: the install guide's commands are run as written, by an admin user with sudo rights.
PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "acl", "procps", "logrotate", "sudo")
HOSTNAME = "snapwatch-test"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BOOT_TIMEOUT = 90.0
PR_SET_PDEATHSIG = 1


def _halt_with_parent() -> None:
    """In the child before exec: SIGTERM (a clean power-off for nspawn) when the test process dies."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class MachineUnavailable(Exception):
    """The machine cannot be built or booted here (the reason is the message)."""


def cache_dir() -> Path:
    explicit = os.environ.get("SNAPWATCH_TEST_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) / "snapwatch-test" if xdg else Path("/var/cache/snapwatch-test")


def ensure_root(debootstrap: str) -> Path:
    """The cached root, built with debootstrap first when it is missing or was made with other packages."""
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    root = cache / f"{SUITE}-root"
    stamp = " ".join(PACKAGES)
    with open(cache / ".lock", "w") as lock:  # one build at a time; the others wait, then reuse it
        fcntl.flock(lock, fcntl.LOCK_EX)
        marker = root / ".snapwatch-test-packages"
        if marker.exists() and marker.read_text() == stamp:
            return root
        building = cache / f"{SUITE}-root.building"
        for stale in (building, root):
            if stale.exists():
                shutil.rmtree(stale)
        done = subprocess.run(
            [debootstrap, "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(building), MIRROR],
            capture_output=True, text=True, timeout=1200, check=False)
        if done.returncode != 0:
            raise MachineUnavailable(f"debootstrap failed ({done.returncode}):\n{done.stdout[-3000:]}"
                                     f"\n{done.stderr[-3000:]}")
        (building / ".snapwatch-test-packages").write_text(stamp)
        building.rename(root)
    return root


def sweep_stale_runs(older_than: float = 600.0) -> None:
    """Remove copies left by runs that were killed: no systemd-nspawn uses them and they are not new."""
    in_use = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            in_use.update(arg for arg in cmdline.read_bytes().decode(errors="replace").split("\0") if "/run-" in arg)
    for run in cache_dir().glob("run-*"):
        if str(run / "root") in in_use or time.time() - run.stat().st_mtime < older_than:
            continue
        subprocess.run(["umount", "--lazy", str(run / "root")], capture_output=True, check=False)
        shutil.rmtree(run, ignore_errors=True)


class Machine:
    """One booted copy of the cached root. Use as a context manager: it is stopped and removed on exit."""

    def __init__(self, image: Path, nspawn: str) -> None:
        self.image = image
        self.nspawn = nspawn
        sweep_stale_runs()
        self.workdir = Path(tempfile.mkdtemp(prefix="run-", dir=cache_dir()))
        self.root = self.workdir / "root"
        self.console = self.workdir / "console.log"
        self.overlay = False
        self.proc: subprocess.Popen[bytes] | None = None
        self.leader = 0  # the machine's PID 1, as seen from here

    # -- life cycle -------------------------------------------------------------------------------

    def __enter__(self) -> Machine:
        try:
            self._make_root()
            self._boot()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _make_root(self) -> None:
        self.root.mkdir()
        upper, work = self.workdir / "upper", self.workdir / "work"
        upper.mkdir()
        work.mkdir()
        mounted = subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={self.image},upperdir={upper},workdir={work}", str(self.root)],
            capture_output=True, text=True, check=False)
        if mounted.returncode == 0:
            self.overlay = True
        else:  # no overlayfs here: a copy (reflinked where the filesystem can)
            subprocess.run(["cp", "-a", "--reflink=auto", f"{self.image}/.", str(self.root)], check=True)
        with open(self.root / "etc/hosts", "a") as hosts:
            hosts.write(f"127.0.1.1\t{HOSTNAME}\n")
        (self.root / "etc/hostname").write_text(HOSTNAME + "\n")

    def _boot(self) -> None:
        with open(self.console, "wb") as console:
            self.proc = subprocess.Popen(
                [self.nspawn, "--quiet", "--register=no", "--keep-unit", "--private-network",
                 f"--hostname={HOSTNAME}", "--boot", "-D", str(self.root)],
                stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_halt_with_parent)  # noqa: PLW1509 (the child only calls prctl before exec)
        deadline = time.monotonic() + BOOT_TIMEOUT
        while not self.leader:
            if self.proc.poll() is not None:
                raise MachineUnavailable(f"systemd-nspawn exited with {self.proc.returncode}:\n{self.console_tail()}")
            if time.monotonic() > deadline:
                raise MachineUnavailable(f"no PID 1 appeared in the machine:\n{self.console_tail()}")
            self.leader = self._find_leader(self.proc.pid)
            if not self.leader:
                time.sleep(0.05)
        while True:
            left = deadline - time.monotonic()
            state = self.run(["systemctl", "is-system-running", "--wait"], check=False, timeout=max(1.0, left))
            if state.stdout.strip() in ("running", "degraded"):
                return
            if left <= 0 or self.proc.poll() is not None:
                raise MachineUnavailable(f"the machine did not finish booting ({state.stdout.strip()}):\n"
                                         f"{self.console_tail()}")
            time.sleep(0.2)

    @staticmethod
    def _find_leader(nspawn_pid: int) -> int:
        """The child of systemd-nspawn that is PID 1 in its own PID namespace."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                fields = dict(line.split(":\t", 1) for line in (entry / "status").read_text().splitlines()
                              if ":\t" in line)
                if int(fields.get("PPid", "0")) == nspawn_pid and fields.get("NSpid", "").split()[-1:] == ["1"]:
                    return int(entry.name)
        return 0

    def console_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.console.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def close(self) -> None:
        """Power the machine off (SIGTERM to nspawn asks its init to halt), kill what is left, remove the copy."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                for pid in (self.leader, self.proc.pid):
                    if pid:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                self.proc.wait(timeout=20)
        if self.overlay:
            unmounted = subprocess.run(["umount", str(self.root)], capture_output=True, check=False)
            if unmounted.returncode != 0:
                subprocess.run(["umount", "--lazy", str(self.root)], capture_output=True, check=False)
            self.overlay = False
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- inside -----------------------------------------------------------------------------------

    def run(self, argv: Sequence[str], *, user: str | None = None, env: dict[str, str] | None = None,
            input: str | None = None, check: bool = True, timeout: float = 60.0,
            cwd: str = "/", merge: bool = False) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the machine as root (or ``user``, through runuser), with a clean environment.

        ``merge`` sends stderr into stdout, so a traced script's output follows the line it belongs to.
        """
        home = "/root" if user is None else f"/home/{user}"
        base = {"PATH": PATH, "LANG": "C.UTF-8", "HOME": home, "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"}
        if user is not None:
            base |= {"USER": user, "LOGNAME": user}
        base |= env or {}
        inner = ["env", "-i", *(f"{k}={v}" for k, v in base.items()), *argv]
        if user is not None:
            inner = ["runuser", "-u", user, "--", *inner]
        done = subprocess.run(["nsenter", "-t", str(self.leader), "-a", "--", "sh", "-c", 'cd "$0" && exec "$@"',
                               cwd, *inner], input=input, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT if merge else subprocess.PIPE, text=True, timeout=timeout,
                              check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited with {done.returncode}\nstdout:\n{done.stdout}\n"
                                 f"stderr:\n{done.stderr}")
        return done

    def sh(self, script: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return self.run(["sh", "-ec", script], **kwargs)  # type: ignore[arg-type]

    def path(self, inside: str) -> Path:
        """The host's path of a file inside the machine."""
        return self.root / inside.lstrip("/")

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.run(["systemctl", "show", unit, *(f"--property={p}" for p in props)]).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, unit: str, *extra: str) -> str:
        return self.run(["journalctl", "--no-pager", "-o", "short-precise", "-u", unit, *extra],
                        check=False).stdout

    def journal_entries(self, unit: str, *extra: str) -> list[dict[str, str]]:
        out = self.run(["journalctl", "--no-pager", "-o", "json", "-u", unit, *extra], check=False).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]
