"""snapwatch installed in a booted machine by following docs/systemd.md, and what the tests need around it.

The machine is set up as a host would be before the guide starts: a backend user ``app`` whose log
directory and ``.env`` are private to it (``0750``/``0600``), a backend unit, a big log the backend wrote
before snapwatch existed, an admin user with sudo rights, a checkout of snapwatch in the admin's home and
wheels built from it. Then the guide's numbered steps run as that admin, as written. The only things the
test adds to the guide: the answers to ``sudoedit`` (an editor that writes prepared text), the venv's
``pip.conf`` for the offline install (the guide's own offline note), ``SNAPWATCH_PKG`` (the guide's
variable), and one drop-in: a shorter ``WatchdogSec=`` and an ``ExecStartPost=`` that records
``snapwatch status --json`` at the moment systemd counts the start as complete.

Every number the tests compare with what snapwatch reports comes from what the backend writer says
it wrote (the ledger), never from snapwatch itself.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.system import doc_steps
from tests.system.machine import Machine

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
LOG_DIR = "/var/log/app"
LOG = f"{LOG_DIR}/snap_conversions_api.log"
CONFIG = "/etc/snapwatch/config.yaml"
STATE_DIR = "/var/lib/snapwatch"
AT_READY = f"{STATE_DIR}/status-at-ready.json"
TOOLS = "/usr/local/lib/snapwatch-test"
EDITS = "/srv/test-edits"
WATCHDOG_SEC = 5
BACKLOG_CALLS = "200x30000,401x8,200x2"  # a backlog that takes a noticeable moment to read
# Port 9 (discard) on the machine's own loopback: nobody listens (private network), so alerts stay pending.
WEBHOOK = "json://127.0.0.1:9/snapwatch-test"

CONFIG_TEMPLATE = """\
# written by the system test through sudoedit, as docs/systemd.md step 3 says
sources:
  - path: {log}
    start_at: beginning
token:
  env_file: /srv/app/.env
  service: shop-backend.service
rules:
  auth_failures:
    streak: {streak}
alerts:
  urls:
    - ${{SNAPWATCH_SLACK_URL}}
  group_wait: 1s
state_dir: {state_dir}
"""

DROP_IN = f"""\
# The system test's only change to the shipped unit: a watchdog short enough to wait for, and a record
# of what the state held when systemd counted the start as complete (READY=1).
[Service]
WatchdogSec={WATCHDOG_SEC}s
ExecStartPost=/bin/sh -c 'exec /usr/local/bin/snapwatch status --json -c {CONFIG} > {AT_READY}'
"""

EDITOR = f"""\
#!/bin/sh
# The answers to sudoedit: it hands the editor a temporary copy named after the file being edited.
for f in "$@"; do
  case "$(basename "$f")" in
    config*) cat {EDITS}/config.yaml > "$f" ;;
    environment*) cat {EDITS}/environment > "$f" ;;
    *) echo "test-editor: no answer prepared for $f" >&2; exit 1 ;;
  esac
done
"""

BACKEND_UNIT = """\
[Unit]
Description=stand-in for the shop backend (loads /srv/app/.env)
[Service]
User=app
EnvironmentFile=/srv/app/.env
ExecStart=/bin/sleep infinity
[Install]
WantedBy=multi-user.target
"""

WRITER_PID = "/srv/app/backend-writer.pid"
# The backend is signalled to reopen its log after create; copytruncate keeps the same file.
LOGROTATE = """\
{log} {{
    su app app
    rotate 50
    missingok
    nomail
    {mode}
    postrotate
        [ ! -f {pidfile} ] || kill -HUP "$(cat {pidfile})"
    endscript
}}
"""

SETUP = f"""\
useradd --system --user-group --no-create-home --home-dir /srv/app --shell /usr/sbin/nologin app
useradd --create-home --groups sudo --shell /bin/bash admin
echo 'admin ALL=(ALL:ALL) NOPASSWD: ALL' > /etc/sudoers.d/admin
chmod 0440 /etc/sudoers.d/admin
useradd --create-home --shell /bin/bash alice
echo 'not for snapwatch' > /home/alice/notes.txt
chmod 0755 /home/alice
chmod 0644 /home/alice/notes.txt
install -d -m 1777 /srv/open
install -d -m 0750 -o app -g app {LOG_DIR} /srv/app
python3 {TOOLS}/backend_writer.py --print-env > /srv/app/.env
chown app:app /srv/app/.env
chmod 0600 /srv/app/.env
install -m 0644 {TOOLS}/shop-backend.service /etc/systemd/system/shop-backend.service
systemctl daemon-reload
systemctl start shop-backend.service
install -d -m 0755 {EDITS}
install -m 0755 {TOOLS}/test-editor /usr/local/bin/test-editor
install -d -m 0755 /etc/systemd/system/snapwatch.service.d
install -m 0644 {TOOLS}/10-test.conf /etc/systemd/system/snapwatch.service.d/10-test.conf
for mode in create copytruncate; do
  install -m 0644 {TOOLS}/logrotate-$mode.conf /etc/snapwatch-test-logrotate-$mode.conf
done
cp -a {TOOLS}/checkout /home/admin/snapwatch
cp -a {TOOLS}/wheels /home/admin/wheels
chown -R admin:admin /home/admin/snapwatch /home/admin/wheels
install -d -m 0755 /opt/snapwatch
printf '[global]\\nno-index = true\\nfind-links = /home/admin/wheels\\n' > /opt/snapwatch/pip.conf
"""


class Ledger:
    """What the backend wrote, added up from the writer's own reports."""

    def __init__(self) -> None:
        self.requests = 0
        self.responses: dict[str, int] = {}

    def add(self, report: dict[str, object]) -> None:
        requests = report["requests"]
        responses = report["responses"]
        assert isinstance(requests, int) and isinstance(responses, dict)
        self.requests += requests
        for status, n in responses.items():
            self.responses[status] = self.responses.get(status, 0) + n

    def as_tuple(self) -> tuple[int, dict[str, int]]:
        return self.requests, dict(sorted(self.responses.items()))


def counted(status: dict[str, object]) -> tuple[int, dict[str, int]]:
    """Requests and responses by status in ``snapwatch status --json``, over every file it lists."""
    requests = 0
    responses: dict[str, int] = {}
    sources = status["sources"]
    assert isinstance(sources, list)
    for s in sources:
        requests += s["requests"]
        for code, n in s["responses"].items():
            responses[code] = responses.get(code, 0) + n
    return requests, dict(sorted(responses.items()))


class Installed:
    """The machine after the guide's steps: snapwatch.service running as ``snapwatch``."""

    def __init__(self, machine: Machine) -> None:
        self.m = machine
        self.ledger = Ledger()
        self.step_output: dict[int, str] = {}
        self.backlog_bytes = 0
        self.backlog: tuple[int, dict[str, int]] = (0, {})

    # -- set-up -----------------------------------------------------------------------------------

    def stage(self, wheels: Path) -> None:
        """Copy in what the set-up uses: the writer, the editor, the drop-in, a checkout and the wheels."""
        tools = self.m.path(TOOLS)
        tools.mkdir(parents=True)
        shutil.copy(HERE / "backend_writer.py", tools / "backend_writer.py")
        shutil.copy(HERE / "sandbox_probe.py", tools / "sandbox_probe.py")
        (tools / "test-editor").write_text(EDITOR)
        (tools / "10-test.conf").write_text(DROP_IN)
        (tools / "shop-backend.service").write_text(BACKEND_UNIT)
        for mode in ("create 0640 app app", "copytruncate"):
            (tools / f"logrotate-{mode.split()[0]}.conf").write_text(LOGROTATE.format(log=LOG, mode=mode,
                                                                                   pidfile=WRITER_PID))
        checkout = tools / "checkout"
        (checkout / "systemd").mkdir(parents=True)
        shutil.copy(REPO / "config.example.yaml", checkout / "config.example.yaml")
        shutil.copy(REPO / "systemd" / "snapwatch.service", checkout / "systemd" / "snapwatch.service")
        shutil.copytree(wheels, tools / "wheels")

    def prepare_host(self) -> None:
        """The machine as the guide finds it: the backend, its private log and .env, an admin."""
        self.m.sh(SETUP, timeout=120)
        self.write(BACKLOG_CALLS, handler="plain")
        self.backlog = self.ledger.as_tuple()
        self.backlog_bytes = self.m.path(LOG).stat().st_size
        self.set_edits(CONFIG_TEMPLATE.format(log=LOG, streak=5, state_dir=STATE_DIR))

    def set_edits(self, config: str) -> None:
        """What the next ``sudoedit`` of the config (and of the environment file) will save."""
        self.m.path(f"{EDITS}/config.yaml").write_text(config)
        self.m.path(f"{EDITS}/environment").write_text(f"SNAPWATCH_SLACK_URL={WEBHOOK}\n")

    def run_guide(self) -> None:
        """docs/systemd.md steps 1 to 5, as the admin, from the checkout, each as one shell script."""
        wheel = next(self.m.path("/home/admin/wheels").glob("snapwatch-*.whl")).name
        for step in doc_steps.install_steps():
            script = "\n".join(step.blocks)
            done = self.admin(script, env={"SNAPWATCH_PKG": f"/home/admin/wheels/{wheel}"}, check=False,
                              timeout=300)
            self.step_output[step.number or 0] = done.stdout
            if done.returncode != 0:
                pytest.fail(f"docs/systemd.md step {step.number} ({step.title}) failed with {done.returncode}:\n"
                            f"{done.stdout[-6000:]}\n{self.journal_tail()}")

    # -- acting ---------------------------------------------------------------------------------------

    def admin(self, script: str, *, env: dict[str, str] | None = None, check: bool = True,
              timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run ``script`` with bash as the admin, in the checkout, traced (``+ command`` before its output)."""
        return self.m.run(["bash", "-O", "expand_aliases", "-e", "-x", "-c", script + "\n", "guide"],
                          user="admin", cwd="/home/admin/snapwatch", check=check, timeout=timeout, merge=True,
                          env={"SUDO_EDITOR": "/usr/local/bin/test-editor", "PS4": "+ ", **(env or {})})

    def day_to_day(self, what: str, *, extra: str = "", check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the guide's day-to-day command that contains ``what`` (with the guide's alias defined)."""
        command = doc_steps.day_to_day(what) + extra
        return self.admin(f"{doc_steps.alias_line()}\n{command}", check=check)

    def status(self) -> dict[str, object]:
        """``snapwatch status --json``, run as the service's user with the guide's alias."""
        done = self.m.run(["bash", "-O", "expand_aliases", "-c",
                           f"{doc_steps.alias_line()}\n{doc_steps.day_to_day('status -c')} --json"],
                          user="admin", timeout=60)
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    def write(self, calls: str, *, handler: str = "file", log: str = LOG, **options: object) -> None:
        """The backend writes ``calls`` (``200x40,401x6``) through ``handler``; the ledger adds its report."""
        argv = ["python3", f"{TOOLS}/backend_writer.py", log, "--calls", calls, "--handler", handler]
        for key, value in options.items():
            argv += [f"--{key.replace('_', '-')}", str(value)]
        done = self.m.run(argv, user="app", timeout=120)
        for line in done.stdout.splitlines():
            self.ledger.add(json.loads(line))

    def writer_command(self, calls: str, handler: str, **options: object) -> str:
        """The same, as a shell command line for a script that runs as root (the report on stdout)."""
        extra = " ".join(f"--{k.replace('_', '-')} {shlex.quote(str(v))}" for k, v in options.items())
        return (f"runuser -u app -- python3 {TOOLS}/backend_writer.py {LOG} --calls {calls} "
                f"--handler {handler} {extra}")

    def record(self, stdout: str) -> None:
        """Add every writer report (one JSON object a line, other lines ignored) to the ledger."""
        for line in stdout.splitlines():
            if line.startswith("{"):
                self.ledger.add(json.loads(line))

    # -- looking ----------------------------------------------------------------------------------

    def show(self, *props: str) -> dict[str, str]:
        return self.m.show("snapwatch.service", *props)

    def main_pid(self) -> int:
        return int(self.show("MainPID")["MainPID"])

    def journal_tail(self, lines: int = 80) -> str:
        return f"--- journalctl -u snapwatch (last {lines}) ---\n" + self.m.journal("snapwatch.service", "-n",
                                                                                    str(lines))

    def cursor(self) -> str:
        entries = self.m.journal_entries("snapwatch.service", "-n", "1")
        return entries[-1]["__CURSOR"] if entries else ""

    def messages_since(self, cursor: str) -> list[str]:
        extra = (f"--after-cursor={cursor}",) if cursor else ()
        return [str(e.get("MESSAGE", "")) for e in self.m.journal_entries("snapwatch.service", *extra)]

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout:.0f}s waiting for: {what}\n{self.journal_tail()}")
            time.sleep(0.3)

    def wait_for_message(self, cursor: str, text: str, timeout: float = 30.0) -> str:
        found: list[str] = []

        def seen() -> bool:
            found[:] = [m for m in self.messages_since(cursor) if text in m]
            return bool(found)

        self.wait_for(f"a journal line with {text!r}", seen, timeout)
        return found[0]

    def wait_exact(self, timeout: float = 45.0) -> dict[str, object]:
        """Wait until snapwatch's counts equal the ledger; fail with both and the journal otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if counted(status) == self.ledger.as_tuple():
                return status
            if time.monotonic() > deadline:
                pytest.fail(f"snapwatch counted {counted(status)}, the backend wrote {self.ledger.as_tuple()}\n"
                            f"{json.dumps(status, indent=1)[:3000]}\n{self.journal_tail()}")
            time.sleep(0.5)

    def wait_active(self, timeout: float = 60.0, *, other_than: int = 0) -> int:
        """Wait until the unit is active (with a MainPID other than ``other_than``); its MainPID."""
        def up() -> bool:
            s = self.show("ActiveState", "MainPID")
            return s["ActiveState"] == "active" and int(s["MainPID"]) not in (0, other_than)

        self.wait_for("snapwatch.service active" + (f" with a MainPID other than {other_than}" if other_than
                                                    else ""), up, timeout)
        return self.main_pid()

    def why(self, text: object) -> str:
        """A failure message: ``text`` and the tail of the service's journal."""
        return f"{text}\n{self.journal_tail()}"
