"""The report in a real browser: headless Chromium draws it (desktop and phone widths, not blank, the
timeline's colours on screen) and loads it with the network cut off, fetching nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapwatch.report import render_report, sample_report
from snapwatch.report.sample import NEW_FP, OLD_FP

from .png import decode

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
)
# No way out: every connection goes to a closed port, every name fails to resolve.
OFFLINE = ("--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND")
BLUE_2XX = bytes.fromhex("4477aa")
RED_AUTH = bytes.fromhex("ee6677")


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("SNAPWATCH_REQUIRE_TOOLS") == "1":
            pytest.fail("chromium is required (SNAPWATCH_REQUIRE_TOOLS=1) but not installed")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


@pytest.fixture
def report_file(tmp_path: Path) -> Path:
    path = tmp_path / "report.html"
    path.write_text(render_report(sample_report()), encoding="utf-8")
    return path


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[list[str]]:
    """The chromium command line, with a fresh profile directory that is removed afterwards."""
    binary = _chromium()
    with tempfile.TemporaryDirectory(prefix="chromium-", dir=tmp_path) as profile:
        yield [binary, *FLAGS, *OFFLINE, f"--user-data-dir={profile}"]


def _run(cmd: list[str]) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    return proc


def _screenshot(browser: list[str], page: Path, out: Path, size: str) -> list[bytes]:
    _run([*browser, f"--screenshot={out}", f"--window-size={size}", page.as_uri()])
    image = decode(out.read_bytes())
    assert f"{image.width},{image.height}" == size
    return [p[:3] for p in image.pixels(step=2)]


def _assert_drawn(pixels: list[bytes]) -> None:
    """Not blank: many colours, a good share of non-white pixels, and the bars' own colours on screen."""
    colours = set(pixels)
    inked = sum(1 for p in pixels if p != b"\xff\xff\xff")
    assert len(colours) > 50, f"only {len(colours)} colours"
    assert inked / len(pixels) > 0.03, f"only {inked} of {len(pixels)} pixels are not white"
    assert pixels.count(BLUE_2XX) > 200, "no 2xx bar on screen"
    assert pixels.count(RED_AUTH) > 200, "no 401 bar on screen"


@pytest.mark.timeout(90)
def test_desktop_screenshot_is_drawn(browser: list[str], report_file: Path, tmp_path: Path) -> None:
    _assert_drawn(_screenshot(browser, report_file, tmp_path / "desktop.png", "1200,2000"))


@pytest.mark.timeout(90)
def test_phone_screenshot_is_drawn(browser: list[str], report_file: Path, tmp_path: Path) -> None:
    _assert_drawn(_screenshot(browser, report_file, tmp_path / "phone.png", "390,844"))


def _page_requests(net_log: Path) -> list[str]:
    """URLs the page itself asked for (Chromium's own background requests are "not an origin")."""
    raw = net_log.read_text(encoding="utf-8")
    try:
        log = json.loads(raw)
    except json.JSONDecodeError:
        # The log is written as it goes; if the browser stopped before closing it, close it here.
        log = json.loads(raw.rstrip().rstrip(",") + "]}")
    names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    return [
        e["params"]["url"]
        for e in log["events"]
        if names.get(e["type"]) == "URL_REQUEST_START_JOB"
        and "url" in e.get("params", {})
        and e["params"].get("initiator") != "not an origin"
    ]


def _load_offline(browser: list[str], page: Path, net_log: Path) -> str:
    proc = _run([*browser, f"--log-net-log={net_log}", "--dump-dom", page.as_uri()])
    return proc.stdout.decode("utf-8")


@pytest.mark.timeout(90)
def test_page_loads_complete_with_the_network_cut_off(browser: list[str], report_file: Path, tmp_path: Path) -> None:
    dom = _load_offline(browser, report_file, tmp_path / "net.json")
    assert dom.rstrip().endswith("</html>")
    for piece in ('<section id="tokens">', OLD_FP, NEW_FP, '<svg class="timeline"', "Back to the incidents"):
        assert piece in dom, piece
    assert _page_requests(tmp_path / "net.json") == []


@pytest.mark.timeout(90)
def test_the_offline_check_would_see_a_fetch(browser: list[str], report_file: Path, tmp_path: Path) -> None:
    """The control for the test above: a page that does fetch something is caught."""
    leaky = tmp_path / "leaky.html"
    leaky.write_text(
        report_file.read_text(encoding="utf-8").replace("</main>", '<img src="http://example.invalid/x.png"></main>'),
        encoding="utf-8",
    )
    _load_offline(browser, leaky, tmp_path / "net.json")
    assert _page_requests(tmp_path / "net.json") == ["http://example.invalid/x.png"]
