"""setup_logging: the journal and plain formats, the JOURNAL_STREAM check, and token redaction."""

from __future__ import annotations

import io
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapwatch.redact import redact
from snapwatch.run.logs import setup_logging, syslog_priority

# Built from parts so that no token-shaped literal sits in the source.
HEADER = "eyJhbGciOiJIUzI1NiIsImtpZCI6IkNhbnZhc1MyU0hNQUNQcm9kIn0"
CLAIMS = "eyJhdWQiOiJjYW52YXMtY2FudmFzYXBpIiwiaXNzIjoiY2FudmFzLXMyc3Rva2VuIn0"
SIGNATURE = "Q2u0h9bPq1xZ7rVf8kLm3nT5yW2aE4cD6gH8jK0lM1o"
JWT = f"{HEADER}.{CLAIMS}.{SIGNATURE}"
OPAQUE = "A1b2C3d4E5f6G7h8I9j0K1l2"


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def emit_all_levels(logger: logging.Logger) -> None:
    logger.debug("d")
    logger.info("i")
    logger.warning("w")
    logger.error("e")
    logger.critical("c")


def test_plain_format_has_timestamp_level_and_name() -> None:
    out = io.StringIO()
    setup_logging(logging.INFO, stream=out, environ={})
    logging.getLogger("snapwatch.tail.follow").info("following %s", "/var/log/app/a.log")
    line = out.getvalue()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO snapwatch\.tail\.follow: following /var/log/app/a\.log\n", line
    )


def test_journal_format_prefixes_priority_without_timestamp() -> None:
    out = io.StringIO()
    setup_logging(logging.DEBUG, stream=out, environ={"JOURNAL_STREAM": "8:12345"})
    emit_all_levels(logging.getLogger("snapwatch.run.daemon"))
    assert out.getvalue().splitlines() == [
        "<7>snapwatch.run.daemon: d",
        "<6>snapwatch.run.daemon: i",
        "<4>snapwatch.run.daemon: w",
        "<3>snapwatch.run.daemon: e",
        "<2>snapwatch.run.daemon: c",
    ]


def test_level_filters_records() -> None:
    out = io.StringIO()
    setup_logging("WARNING", stream=out, environ={"JOURNAL_STREAM": "8:1"})
    emit_all_levels(logging.getLogger("snapwatch.x"))
    assert [line[:3] for line in out.getvalue().splitlines()] == ["<4>", "<3>", "<2>"]


def test_journal_keeps_multi_line_messages_and_tracebacks_on_one_line() -> None:
    out = io.StringIO()
    setup_logging(logging.INFO, stream=out, environ={"JOURNAL_STREAM": "8:1"})
    log = logging.getLogger("snapwatch.store.state")
    log.warning("first\nsecond\r\nthird")
    try:
        raise ValueError("broken\nvalue")
    except ValueError:
        log.exception("store failed")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0] == "<4>snapwatch.store.state: first\\nsecond\\nthird"
    assert lines[1].startswith("<3>snapwatch.store.state: store failed\\nTraceback (most recent call last):\\n")
    assert lines[1].endswith("ValueError: broken\\nvalue")


def test_custom_levels_map_to_the_lower_priority() -> None:
    assert [syslog_priority(n) for n in (5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 60)] == [
        7, 7, 7, 6, 6, 4, 4, 3, 3, 2, 2,
    ]  # fmt: skip


def _stream_id(path: Path) -> str:
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}"


def test_journal_stream_must_name_the_real_stream(tmp_path: Path) -> None:
    target, other = tmp_path / "stderr.txt", tmp_path / "other.txt"
    other.touch()
    with target.open("w", encoding="utf-8") as stream:
        setup_logging(logging.INFO, stream=stream, environ={"JOURNAL_STREAM": _stream_id(target)})
        logging.getLogger("snapwatch.a").info("to the journal")
        # Inherited by a process whose stderr goes elsewhere: the plain format.
        setup_logging(logging.INFO, stream=stream, environ={"JOURNAL_STREAM": _stream_id(other)})
        logging.getLogger("snapwatch.a").info("to a terminal")
        setup_logging(logging.INFO, stream=stream, environ={"JOURNAL_STREAM": "garbage"})
        logging.getLogger("snapwatch.a").info("unparsable")
    lines = target.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "<6>snapwatch.a: to the journal"
    assert re.fullmatch(r"\d{4}-\S+ \S+ INFO snapwatch\.a: to a terminal", lines[1])
    assert re.fullmatch(r"\d{4}-\S+ \S+ INFO snapwatch\.a: unparsable", lines[2])


def test_second_call_replaces_its_own_handler_only() -> None:
    first, second = io.StringIO(), io.StringIO()
    other = logging.StreamHandler(io.StringIO())
    logging.getLogger().addHandler(other)
    setup_logging(logging.INFO, stream=first, environ={})
    handler = setup_logging(logging.INFO, stream=second, environ={})
    logging.getLogger("snapwatch.b").info("once")
    assert first.getvalue() == ""
    assert second.getvalue().endswith("snapwatch.b: once\n")
    assert other in logging.getLogger().handlers
    assert handler in logging.getLogger().handlers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"token {JWT} rejected", "token [redacted] rejected"),
        (f"cut token {HEADER}.{CLAIMS[:20]}", "cut token [redacted]"),
        (f"POST https://tr.snapchat.com/v3/123/events?access_token={OPAQUE}&x=1 401",
         "POST https://tr.snapchat.com/v3/123/events?access_token=[redacted]&x=1 401"),
        (f'{{"ACCESS_TOKEN": "{OPAQUE}", "pixel": 1}}', '{"ACCESS_TOKEN": "[redacted]", "pixel": 1}'),
        (f"Authorization: Bearer {OPAQUE}", "Authorization: Bearer [redacted]"),
        (f"access_token={JWT}", "access_token=[redacted]"),
        ("v2 with no Bearer header where headers are logged", "v2 with no Bearer header where headers are logged"),
        ("token 3f9a1c0b7d2e rejected", "token 3f9a1c0b7d2e rejected"),
    ],
)  # fmt: skip
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize("environ", [{}, {"JOURNAL_STREAM": "8:1"}])
def test_no_token_reaches_a_log_line(environ: dict[str, str]) -> None:
    out = io.StringIO()
    setup_logging(logging.DEBUG, stream=out, environ=environ)
    log = logging.getLogger("snapwatch.run.probe")
    log.info("validate with %s", JWT)
    log.info(f"url https://tr.snapchat.com/v3/1/events?access_token={OPAQUE}")
    try:
        raise RuntimeError(f"HTTP 401 for url https://x/?access_token={OPAQUE} token {JWT}")
    except RuntimeError:
        log.exception("probe failed")
    text = out.getvalue()
    assert OPAQUE not in text
    assert HEADER not in text
    assert SIGNATURE not in text
    assert "validate with [redacted]" in text
    assert "/events?access_token=[redacted]" in text
    assert "probe failed" in text
    assert "RuntimeError: HTTP 401 for url https://x/?access_token=[redacted] token [redacted]" in text


def test_redaction_also_protects_later_handlers() -> None:
    out, later = io.StringIO(), io.StringIO()
    setup_logging(logging.INFO, stream=out, environ={})
    second = logging.StreamHandler(later)
    logging.getLogger().addHandler(second)
    logging.getLogger("snapwatch.c").info("token %s", JWT)
    assert later.getvalue() == "token [redacted]\n"


def test_a_bad_format_string_is_reported_by_the_handler_not_raised(capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    handler = setup_logging(logging.INFO, stream=out, environ={})
    bad = logging.LogRecord("snapwatch.d", logging.INFO, __file__, 1, "two %s %s", ("one",), None)
    handler.handle(bad)  # must not raise: the handler's own error report takes over
    handler.handle(logging.LogRecord("snapwatch.d", logging.INFO, __file__, 2, "still logging", None, None))
    assert out.getvalue().endswith("snapwatch.d: still logging\n")
    assert "Logging error" in capsys.readouterr().err
