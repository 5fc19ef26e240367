"""Secrets by value: tokens in every odd place a backend's log can put them, and the targets' passwords,
never leave snapwatch — not in any command's output, not in an alert, not in the state file or its WAL.

The log below carries tokens where real bugs put them: quoted by a 400 body's reason and a 401 body's
text, in the pixel slot (pixel and token swapped), in the URL path, in an event name, on a status line,
URL-encoded, in quotes, before a line break. It goes through ``scan`` (text and JSON), ``diagnose``
(text and JSON), a real daemon with a webhook and an SMTP target on loopback, and ``status``. Every
twelve-character window of every token and password is searched for in all of it: a leak of any part
longer than eleven characters fails.
"""

from __future__ import annotations

import email
import io
import json
import logging
from collections.abc import Iterable
from dataclasses import replace
from email.message import Message as EmailMessage
from pathlib import Path
from urllib.parse import quote

import pytest

from snapwatch.alert.messages import render
from snapwatch.alert.notify import AppriseTarget
from snapwatch.codec import stored_json
from snapwatch.ingest.tokens import fingerprint
from snapwatch.redact import SECRETS, redact
from snapwatch.run.logs import setup_logging
from snapwatch.store.outbox import Outbox
from snapwatch.store.state import IncidentRow, Store
from tests.helpers import cli
from tests.helpers.alerts import T0, make_alert, make_diagnosis
from tests.helpers.daemon import write_config
from tests.helpers.peers import HOOK_SECRET, SMTP_PASSWORD, Hook, Mailbox, smtp_server
from tests.helpers.process import DaemonProcess, status_json
from tests.helpers.tokens import make_canvas_token

PIXEL = "5bf81ee1-15b1-4dc1-b636-d7dae49b950e"
JWT = make_canvas_token(seed="leak-jwt")  # the backend's token: in URLs, and quoted by a 401 body
OPAQUE = "Op4qUeT0kenValue9xYzAbCdEf123456789QwErTy"  # an opaque one, quoted by a 400 body's reason
IN_PIXEL_SLOT = make_canvas_token(seed="leak-pixel")  # pixel and token swapped in the .env
IN_PATH = "PaTh5ecretSegment0123456789abcdefGHIJ"  # a token in the URL path
IN_EVENT = "EvEnT0kenInTheEventName1234567890abcdefXY"  # a token as the event name
ON_STATUS_LINE = "StAtUs0kenInTheStatusLine1234567890abcdZ"
ENCODED = "EnC+oded/Token=Value0123456789abcdefGHIJKL"  # sent URL-encoded
QUOTED = make_canvas_token(seed="leak-quoted")  # in the .env in quotes, and reaching the URL in quotes
BEFORE_NEWLINE = "NeWLine0kenBeforeALineBreak1234567890abcQ"
SHORT = "Xy7aB2cD9eF4gH1iJ6kL3mN8"  # an opaque token too short for any shape rule: only its value tells
SHORT_SENT = "Qw8eR4tY2uI6oP0aS3dF7gH5"  # the same kind, sent by the backend and quoted back by a 400 body
TOKENS = (SHORT, SHORT_SENT, JWT, OPAQUE, IN_PIXEL_SLOT, IN_PATH, IN_EVENT, ON_STATUS_LINE, ENCODED, QUOTED,
          BEFORE_NEWLINE)
PASSWORDS = (SMTP_PASSWORD, HOOK_SECRET)
SEP = "=" * 100


def _block(at: str, event: str, url: str, status: str, body: str) -> list[str]:
    p = f"2025-12-05 {at} - INFO - "
    return [p + SEP, f"{p}[OUT] OUTGOING REQUEST - {event} Event (v3)", f"{p}URL: {url}", f"{p}Method: POST",
            f"{p}Payload:", p + '{\n  "data": []\n}', p + SEP, p + SEP, f"{p}[IN] INCOMING RESPONSE - {event} Event",
            f"{p}Status Code: {status}", f"{p}Body: {body}", p + SEP]


def _v3(token: str, pixel: str = PIXEL, tail: str = "") -> str:
    return f"https://tr.snapchat.com/v3/{pixel}/events{tail}?access_token={token}"


def write_log(path: Path) -> None:
    lines: list[str] = []
    for i in range(20):  # accepted first, so the streak below is an incident with history
        lines += _block(f"10:00:{i:02d}", "PURCHASE", _v3(JWT), "200",
                        '{"status": "VALID", "reason": "Events have been processed successfully."}')
    odd = [
        ("PURCHASE", _v3(JWT), "401", json.dumps({"status": "UNKNOWN", "text": f"Invalid access token {JWT}"})),
        ("PURCHASE", _v3(OPAQUE), "400",
         json.dumps({"status": "INVALID", "reason": f"access token {OPAQUE} is not valid"})),
        ("PURCHASE", _v3(SHORT_SENT), "400",
         json.dumps({"status": "INVALID", "reason": f"token {SHORT_SENT} may not send PURCHASE"})),
        ("PURCHASE", _v3(PIXEL, pixel=IN_PIXEL_SLOT), "401", '{"status": "UNKNOWN", "text": "denied"}'),
        ("PURCHASE", _v3(JWT, tail=f"/{IN_PATH}"), "401", '{"status": "UNKNOWN", "text": "denied"}'),
        (IN_EVENT, _v3(JWT), "401", '{"status": "UNKNOWN", "text": "denied"}'),
        ("PURCHASE", _v3(JWT), ON_STATUS_LINE, '{"status": "UNKNOWN", "text": "denied"}'),
        ("PURCHASE", _v3(quote(ENCODED, safe="")), "401",
         json.dumps({"status": "UNKNOWN", "text": f"bad token {quote(ENCODED, safe='')}"})),
        ("PURCHASE", _v3(quote(f'"{QUOTED}"', safe="")), "401", '{"status": "UNKNOWN", "text": "denied"}'),
        ("PURCHASE", _v3(JWT), "401", json.dumps({"status": "UNKNOWN", "text": f"token {BEFORE_NEWLINE}\nrefused"})),
    ]
    for n in range(3):  # three rounds: a streak of 401s long enough to open auth-failures
        for i, (event, url, status, body) in enumerate(odd):
            lines += _block(f"10:01:{n * 10 + i:02d}", event, url, status, body)
    lines += [f"2025-12-05 10:02:00 - INFO - token {BEFORE_NEWLINE}", "continues on the next line"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def windows(secret: str, size: int = 12) -> set[str]:
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


def leaks(blob: str | bytes) -> list[str]:
    """Every window of a token or password found in ``blob`` (decoded as UTF-8 when bytes)."""
    text = blob.decode("utf-8", "replace") if isinstance(blob, bytes) else blob
    found = []
    for secret in (*TOKENS, *PASSWORDS, quote(ENCODED, safe="")):
        hits = sorted(w for w in windows(secret) if w in text)
        if hits:
            found.append(f"{secret[:6]}…: {hits[0]!r}")
    return found


def _mail_texts(messages: Iterable[bytes]) -> list[str]:
    """Each message as sent and each part decoded (base64 or quoted-printable bodies hide nothing)."""
    out = []
    for raw in messages:
        out.append(raw.decode("utf-8", "replace"))
        msg: EmailMessage = email.message_from_bytes(raw)
        for part in msg.walk():
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                out.append(payload.decode("utf-8", "replace"))
        out.append(str(msg["Subject"]))
    return out


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    log = tmp_path / "capi.log"
    write_log(log)
    env = tmp_path / ".env"
    env.write_text(f'SNAP_ACCESS_TOKEN="{QUOTED}"\nSNAP_PIXEL_ID={PIXEL}\n')
    return tmp_path, log, env


def test_the_fixture_holds_every_secret_where_it_says(setup: tuple[Path, Path, Path]) -> None:
    _, log, env = setup
    text = log.read_text()
    for secret in (SHORT_SENT, JWT, OPAQUE, IN_PIXEL_SLOT, IN_PATH, IN_EVENT, ON_STATUS_LINE, BEFORE_NEWLINE):
        assert secret in text
    assert quote(ENCODED, safe="") in text and quote(f'"{QUOTED}"', safe="") in text
    assert QUOTED in env.read_text()
    assert leaks(text), "the leak check finds the tokens in the log itself"


def test_scan_and_diagnose_hold_no_secret(setup: tuple[Path, Path, Path]) -> None:
    tmp_path, log, env = setup
    config = write_config(tmp_path / "config.yaml", [log], tmp_path / "state",
                          f"token:\n  env_file: {env}\n", timezone="UTC")
    outputs = {}
    for name, argv in {
        "scan": ("scan", "--env-file", str(env), str(log)),
        "scan --json": ("scan", "--json", "--env-file", str(env), str(log)),
        "diagnose": ("diagnose", "-c", str(config), "--now", "2025-12-05T10:05:00+00:00"),
        "diagnose --json": ("diagnose", "--json", "-c", str(config), "--now", "2025-12-05T10:05:00+00:00"),
        "report": ("report", "--env-file", str(env), str(log)),
    }.items():
        done = cli.snapwatch_process(*argv)
        assert done.returncode == 0, done.stderr
        outputs[name] = done.stdout + done.stderr
    for name, text in outputs.items():
        assert not leaks(text), (name, leaks(text))
    # what the redactor replaced is still there as its label: a reader can tell which token it was
    assert f"token {fingerprint(OPAQUE)}" in outputs["scan --json"]


@pytest.mark.timeout(120)
def test_the_daemon_its_alerts_status_and_state_hold_no_secret(setup: tuple[Path, Path, Path]) -> None:
    tmp_path, log, env = setup
    hook, box = Hook(), Mailbox()
    try:
        with smtp_server(box) as port:
            mail = f"mailto://ops:{SMTP_PASSWORD}@127.0.0.1:{port}?to=oncall@example.com&from=snapwatch@example.com"
            urls = [f"json://127.0.0.1:{hook.port}/hook", f"mmost://127.0.0.1:{hook.port}/{HOOK_SECRET}", mail]
            alerts = "alerts:\n  group_wait: 0s\n  urls:\n" + "".join(f"    - {json.dumps(u)}\n" for u in urls)
            config = write_config(tmp_path / "config.yaml", [log], tmp_path / "state",
                                  f"token:\n  env_file: {env}\n{alerts}", timezone="UTC")
            daemon = DaemonProcess(config)
            try:
                daemon.wait_for("incident opened: auth-failures", 60)
                received = hook.wait_for(2, 30)
                messages = box.wait_for(1, 30)
                state = {p.name: p.read_bytes() for p in (tmp_path / "state").iterdir() if p.is_file()}
                status_text = cli.snapwatch_process("status", "-c", str(config))
                status = status_json(config)
            finally:
                code, _ = daemon.terminate()
            assert code == 0, daemon.output()
    finally:
        hook.stop()
    history = json.loads(cli.snapwatch_process("status", "--history", "--json", "-c", str(config)).stdout)
    reports = [cli.snapwatch_process("report", "-c", str(config), "--incident", h["id"]) for h in history["history"]]
    assert reports and all(r.returncode == 0 for r in reports), [r.stderr for r in reports]
    assert "state.db-wal" in state, sorted(state)  # the WAL is searched while the daemon holds it
    state_after = {p.name: p.read_bytes() for p in (tmp_path / "state").iterdir() if p.is_file()}
    blobs: dict[str, str | bytes] = {
        "webhooks": json.dumps([body for _, body in received], ensure_ascii=False),
        "daemon log": "".join(daemon.lines),
        "status": status_text.stdout + status_text.stderr,
        "status --json": json.dumps(status, ensure_ascii=False),
        "status --history": json.dumps(history, ensure_ascii=False),
        **{f"report {i}": r.stdout + r.stderr for i, r in enumerate(reports)},
        **{f"mail {i}": text for i, text in enumerate(_mail_texts(messages))},
        **{f"state {name}": data for name, data in state.items()},
        **{f"state after stop {name}": data for name, data in state_after.items()},
    }
    for name, blob in blobs.items():
        assert not leaks(blob), (name, leaks(blob))
    assert any(f"token {fingerprint(JWT)}" in str(body) for _, body in received)


# -- each output path redacts on its own ---------------------------------------------------------------
# The end-to-end tests above pass through several layers (kept bodies are redacted as they are read, then
# every output again), so removing one layer would not show there. Here each path gets a secret straight
# in, past every earlier layer: an opaque value no shape rule knows, remembered as a token was seen.


@pytest.fixture
def known() -> str:
    SECRETS.add(SHORT)
    return SHORT


def test_an_alert_message_holds_no_known_secret(known: str) -> None:
    diagnosis = make_diagnosis()
    finding = diagnosis.findings[0]
    poisoned = replace(diagnosis, findings=(replace(finding, evidence=(f"body quotes {known}",)),),
                       ruled_out=(f"also {known}",))
    msg = render(make_alert(diagnosis=poisoned))
    for text in (msg.title, msg.text, msg.markdown, msg.html, msg.to_json(), *msg.annotations.values()):
        assert not leaks(text)
    assert f"token {fingerprint(known)}" in msg.text


def test_command_output_holds_no_known_secret(known: str, tmp_path: Path) -> None:
    log = tmp_path / f"backend-{known}.log"  # a file name is printed by scan, as given, past the parser
    log.write_text("")
    code, out, err = cli.run_cli("scan", str(log))
    code_json, out_json, _ = cli.run_cli("scan", "--json", str(log))
    assert code == code_json == 0, err
    assert str(log.parent) in out and not leaks(out + err) and not leaks(out_json)


def test_the_state_file_holds_no_known_secret(known: str, tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.commit_batch(None, path="/var/log/app.log", source_memory={"history": {"last_body": known}},
                           incident_changes=[IncidentRow("i1", "auth-failures", "/var/log/app.log", "open", T0,
                                                         json=stored_json({"evidence": known}))])
        outbox = Outbox(store.conn)
        outbox.enqueue(render(make_alert()), [("k", "json://…")], T0)
        data = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"source_memory" not in data or not leaks(data)
    assert not leaks(data)


def test_log_lines_hold_no_known_secret(known: str) -> None:
    # loads apprise and its log filter, as a daemon does
    AppriseTarget(f"mailto://ops:{SMTP_PASSWORD}@127.0.0.1:2525?to=oncall@example.com&from=snapwatch@example.com")
    stream = io.StringIO()
    handler = setup_logging("INFO", stream, environ={})
    try:
        logging.getLogger("snapwatch.tests.leaks").warning("a library said: %s", known)
        logging.getLogger("apprise").warning("sent to mailto://ops:%s@mail.example.com", SMTP_PASSWORD)
        logging.getLogger("apprise").warning("privacy form: mailto://ops:S...5@m...m/?to=a")
    finally:
        logging.getLogger().removeHandler(handler)
    text = stream.getvalue()
    assert "a library said: token " in text and not leaks(text)
    assert "privacy form: mailto://…@" in text and "S...5" not in text  # apprise's partial secrets too


def test_shape_rules_catch_keys_never_seen() -> None:
    # nothing remembered: a JWT, and long random-looking runs wherever they stand, go by their shape alone
    for text in (f"event {IN_EVENT} failed", f"Status Code: {ON_STATUS_LINE}", f"GET /v3/p/events/{IN_PATH}?x=1",
                 f"Invalid access token {JWT}", f"token {BEFORE_NEWLINE}\nrefused"):
        assert not leaks(redact(text)), text
    # and what must stay readable does: a pixel id, a file path, a digest, an alert id
    for text in (f"pixel {PIXEL}", "/var/log/app/snap_conversions_api.log.1", "sha256 " + "ab" * 32, "id " + "c" * 32):
        assert redact(text) == text
