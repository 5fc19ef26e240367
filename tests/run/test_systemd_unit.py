"""The systemd unit: systemd-analyze verify is silent, the security score is at most 2.0, and the runtime
works under the unit's MemoryDenyWriteExecute=."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT
from tests.helpers.tools import need_tool

UNIT = ROOT / "systemd" / "snapwatch.service"
INSTALLED_BINARY = "/usr/local/bin/snapwatch"
MAX_EXPOSURE = 2.0
TOOL_ENV = {
    **os.environ,
    "SYSTEMD_COLORS": "0",
    "SYSTEMD_PAGER": "",
    "SYSTEMD_LOG_LEVEL": "info",
    "LC_ALL": "C.UTF-8",
}


def systemd_analyze() -> str:
    return need_tool("systemd-analyze")


def directives(text: str) -> dict[str, list[str]]:
    """Every ``Key=value`` of a unit file, in order, values of repeated keys kept."""
    out: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;[":
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def verify(tool: str, unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool, "verify", str(unit)],
        capture_output=True,
        text=True,
        env=TOOL_ENV,
        timeout=60,
        check=False,
    )


def unit_with_stub_binary(tmp_path: Path, text: str) -> Path:
    """The unit with its Exec paths pointed at a stub executable that exists on this machine.

    `verify` fails a unit whose ExecStart binary is missing, and snapwatch is not installed at
    /usr/local/bin here; only that path changes, every other line is verified as shipped.
    """
    stub = tmp_path / "bin" / "snapwatch"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    stub.chmod(0o755)
    copy = tmp_path / "unit" / "snapwatch.service"
    copy.parent.mkdir()
    copy.write_text(text.replace(INSTALLED_BINARY, str(stub)), encoding="utf-8")
    return copy


def test_unit_declares_what_the_daemon_relies_on() -> None:
    d = directives(UNIT.read_text(encoding="utf-8"))
    assert d["Type"] == ["notify"]
    assert d["NotifyAccess"] == ["main"]
    assert d["WatchdogSec"] == ["30s"]
    assert d["ExecStartPre"] == [f"-{INSTALLED_BINARY} check-config -c /etc/snapwatch/config.yaml"]
    assert d["ExecStart"] == [f"{INSTALLED_BINARY} run -c /etc/snapwatch/config.yaml"]
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert d["Restart"] == ["on-failure"]
    assert d["RestartPreventExitStatus"] == ["78"]
    assert d["StateDirectory"] == ["snapwatch"]
    assert d["StateDirectoryMode"] == ["0700"]
    assert d["ConfigurationDirectory"] == ["snapwatch"]
    assert d["UMask"] == ["0077"]
    assert d["CapabilityBoundingSet"] == [""]
    assert d["ProtectSystem"] == ["strict"]
    assert d["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert d["SystemCallFilter"][0] == "@system-service"


def test_verify_prints_nothing(tmp_path: Path) -> None:
    tool = systemd_analyze()
    copy = unit_with_stub_binary(tmp_path, UNIT.read_text(encoding="utf-8"))
    result = verify(tool, copy)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_verify_prints_nothing_for_the_installed_binary() -> None:
    tool = systemd_analyze()
    if not os.access(INSTALLED_BINARY, os.X_OK):
        pytest.skip(f"{INSTALLED_BINARY} is not installed; the stub copy above covers the unit")
    result = verify(tool, UNIT)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_verify_catches_a_misspelt_key(tmp_path: Path) -> None:
    # Guards the check above: a typo is only a warning in verify's output, and it must not go unseen.
    tool = systemd_analyze()
    text = UNIT.read_text(encoding="utf-8").replace("ProtectSystem=strict", "ProtectSytem=strict")
    result = verify(tool, unit_with_stub_binary(tmp_path, text))
    assert "ProtectSytem" in result.stdout + result.stderr


def exposure(tool: str, unit: Path) -> tuple[float, str]:
    result = subprocess.run(
        [tool, "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        env=TOOL_ENV,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", output)
    assert match, f"no exposure line in systemd-analyze security output:\n{output}"
    return float(match.group(1)), output


def test_security_exposure_at_most_two() -> None:
    tool = systemd_analyze()
    score, output = exposure(tool, UNIT)
    assert score <= MAX_EXPOSURE, output


def test_security_score_is_parsed_from_a_weak_unit(tmp_path: Path) -> None:
    # The same parser on a unit with no hardening must see a high score, so the bound above means something.
    tool = systemd_analyze()
    weak = tmp_path / "weak.service"
    weak.write_text("[Service]\nExecStart=/bin/true\n", encoding="utf-8")
    score, _ = exposure(tool, weak)
    assert score > 8.0


# Run in a child process: switch on the kernel's memory-deny-write-execute (what the unit's
# MemoryDenyWriteExecute= enforces with seccomp), then do the kinds of work the daemon does.
_RUNTIME_PROBE = r"""
import ctypes, importlib, json, pkgutil, sys, threading
from http.server import BaseHTTPRequestHandler, HTTPServer
mdwe = sys.argv[1] == "mdwe"
if mdwe:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
        print(json.dumps({"unsupported": ctypes.get_errno()})); sys.exit(0)
    import mmap
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        print(json.dumps({"unsupported": "W+X mapping still allowed"})); sys.exit(0)
    except OSError:
        pass
result = {}
import snapwatch
result["modules"] = {}
for info in sorted(pkgutil.walk_packages(snapwatch.__path__, "snapwatch."), key=lambda i: i.name):
    if info.name == "snapwatch.__main__":
        continue
    try:
        importlib.import_module(info.name)
        result["modules"][info.name] = "ok"
    except Exception as exc:
        result["modules"][info.name] = type(exc).__name__
import sqlite3, ssl
db = sqlite3.connect(sys.argv[2])
db.execute("pragma journal_mode=wal"); db.execute("create table if not exists t(x)")
db.execute("insert into t values (?)", ("ok",)); db.commit()
ssl.create_default_context()
from snapwatch.config import load_config
result["config"] = str(load_config(sys.argv[3], environ={}).state_dir)
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"pong")
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"])); self.send_response(200); self.end_headers()
    def log_message(self, *args):
        pass
server = HTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=server.serve_forever, daemon=True).start()
port = server.server_address[1]
import httpx
result["httpx"] = httpx.get(f"http://127.0.0.1:{port}/").text
import apprise
a = apprise.Apprise(); a.add(f"json://127.0.0.1:{port}/")
result["apprise"] = bool(a.notify(title="t", body="b"))
import yaml, prometheus_client, watchfiles, dotenv, pydantic
server.shutdown()
print(json.dumps(result, sort_keys=True))
"""


def run_probe(mode: str, tmp_path: Path) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", _RUNTIME_PROBE, mode, str(tmp_path / f"{mode}.sqlite"),
         str(ROOT / "config.example.yaml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    parsed: dict[str, object] = json.loads(result.stdout.splitlines()[-1])
    return parsed


def test_runtime_works_without_writable_executable_memory(tmp_path: Path) -> None:
    under_mdwe = run_probe("mdwe", tmp_path)
    if "unsupported" in under_mdwe:
        pytest.skip(f"this kernel cannot deny write+execute memory per process: {under_mdwe['unsupported']}")
    baseline = run_probe("plain", tmp_path)
    assert baseline["httpx"] == "pong"
    assert baseline["apprise"] is True
    assert under_mdwe == baseline
