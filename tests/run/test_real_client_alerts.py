"""One problem, one page, judged at its own time: a real backend's token is revoked, the on-call person puts a
new one in the ``.env`` and restarts the backend, traffic recovers.

The harness's backend (Python logging, httpx) talks to the fake Snap server, which revokes the token after
20 answers; the daemon (``python -m snapwatch run``) follows the log and alerts a real loopback webhook
(apprise ``json://``) and a real SMTP server. Then ``scan --env-file`` reads the same log with the ``.env``
as it is today.
"""

from __future__ import annotations

import email
import json
from email import policy
from pathlib import Path
from typing import Any

import pytest

from snapwatch.store.state import Store
from tests.harness import (
    Daemon,
    canvas_token,
    check_harness,
    fake_snap,
    fingerprint,
    log_files,
    run_backends,
    scan_json,
    write_env,
)
from tests.helpers.contradictions import contradictions, said_in
from tests.helpers.peers import SMTP_PASSWORD, Hook, Mailbox, smtp_server
from tests.helpers.tokens import assert_no_secret

ACCEPTED, FIRST_RUN, SECOND_RUN = 20, 50, 30
UNIT = "shop-backend.service"


def _config(daemon: Daemon, env: Path, hook: Hook, smtp_port: int) -> None:
    """The harness daemon's config with the token source, the unit, and two real targets (group_wait 1s)."""
    state = daemon.config.parent / "snapwatch-state"
    mail = (f"mailto://ops:{SMTP_PASSWORD}@127.0.0.1:{smtp_port}"
            "?to=oncall@example.com&from=snapwatch@example.com")
    doc = {"sources": [{"path": str(daemon.log), "start_at": "beginning"}],
           "token": {"env_file": str(env), "service": UNIT},
           "alerts": {"urls": [f"json://127.0.0.1:{hook.port}/hook", mail], "group_wait": "1s", "timeout": "5s"},
           "state_dir": str(state)}
    daemon.config.write_text(json.dumps(doc, indent=1), encoding="utf-8")  # JSON is YAML


@pytest.mark.timeout(180)
def test_revoke_swap_restart_recovery_pages_once_and_resolves_naming_both_tokens(tmp_path: Path) -> None:
    old, new = canvas_token("revoked-in-business-manager"), canvas_token("generated-after")
    old_fp, new_fp = fingerprint(old), fingerprint(new)
    log, env = tmp_path / "snap_conversions_api.log", tmp_path / ".env"
    write_env(env, old)
    log.touch()
    hook, box = Hook(), Mailbox()
    try:
        with smtp_server(box) as smtp_port, fake_snap(client_timeout=5.0) as snap:
            daemon = Daemon(tmp_path, log, env)
            _config(daemon, env, hook, smtp_port)
            with daemon:
                # Snap stops accepting the token after 20 answers: regenerated in Business Manager. One request
                # at a time, so the log holds the 200s, then one unbroken run of 401s.
                snap.accept(old, revoke_after=ACCEPTED)
                workers = run_backends(1, log=log, snap=snap, env_file=env, workdir=tmp_path, events=FIRST_RUN,
                                       concurrency=1)
                hook.wait_for(1, 30.0)  # the page arrives while the streak lasts
                # The on-call person generates a new token, puts it in the .env and restarts the backend.
                snap.accept(new)
                write_env(env, new)
                workers += run_backends(1, log=log, snap=snap, env_file=env, workdir=tmp_path, events=SECOND_RUN,
                                        concurrency=5)
                hook.wait_for(2, 30.0)
                box.wait_for(2, 30.0)
                daemon.caught_up()
            out = daemon.output()  # stopped: whatever was owed went out at shutdown
            tally = snap.tally()
        check_harness(tally, log_files(log), workers)
    finally:
        hook.stop()
    assert tally.expected()[(401, old_fp)] == FIRST_RUN - ACCEPTED
    # Both rules opened (so "no error-rate page" is not vacuous), and one page was sent for them.
    assert "incident opened: auth-failures" in out and "incident opened: error-rate" in out, out

    bodies = [body for _, body in hook.received]
    assert [b["title"].split()[1] for b in bodies] == ["FIRING", "RESOLVED"], [b["title"] for b in bodies]
    assert [b["type"] for b in bodies] == ["failure", "success"]  # apprise's notification types
    firing, resolved = bodies
    assert firing["title"].startswith("[snapwatch] FIRING auth-failures on ") and "(token-revoked)" in firing["title"]
    assert "error-rate" not in firing["title"] and "error-rate" not in resolved["title"]
    assert "Folded in (explained by this incident): error-rate since " in firing["message"]
    assert f"in the failing requests: fingerprint {old_fp}" in firing["message"]
    for step in ("Business Manager → Business Details → Conversions API Tokens", f"SNAP_ACCESS_TOKEN in {env}",
                 f"sudo systemctl restart {UNIT}", "snapwatch diagnose --probe"):
        assert step in firing["message"], step
    # The RESOLVED message: its final verdict, what changed at recovery, the failing and the working token.
    assert "token-revoked" in resolved["message"]
    assert f"requests carry token {new_fp} since " in resolved["message"]
    assert f"failed: fingerprint {old_fp}" in resolved["message"]
    assert f"works: fingerprint {new_fp}" in resolved["message"]
    for body in bodies:  # read back (so the check bites), and consistent
        assert said_in(body["message"]).verdict == "token-revoked", body["message"]
        assert contradictions(body["message"]) == [], body["message"]

    mails = [email.message_from_bytes(raw, policy=policy.default) for raw in box.messages]
    subjects = [str(m["Subject"]) for m in mails]
    assert [s.split()[1] for s in subjects] == ["FIRING", "RESOLVED"], subjects
    assert all(len(s) < 80 and "auth-failures" in s and s.endswith(": token-revoked") for s in subjects), subjects
    plain = [m.get_body(("plain",)).get_content() for m in mails]  # type: ignore[union-attr]
    assert f"works: fingerprint {new_fp}" in plain[1] and f"failed: fingerprint {old_fp}" in plain[1]
    for text in plain:
        assert said_in(text).verdict == "token-revoked", text
        assert contradictions(text) == [], text

    # The daemon kept what the .env held, and since when: fingerprints only, the old token then the new one.
    with Store.open(tmp_path / "snapwatch-state") as store:
        assert [s.fingerprint for s in store.env_history()] == [old_fp, new_fp]

    received = json.dumps(bodies) + "".join(raw.decode("utf-8", "replace") for raw in box.messages)
    assert_no_secret(received + out, old, new, SMTP_PASSWORD)

    # scan with today's .env (it holds the new token): the past incident is still the revocation, not drift.
    scan = scan_json(log_files(log), env)
    auth: list[dict[str, Any]] = [i for i in scan["incidents"] if i["rule"] == "auth-failures"]
    assert len(auth) == 1 and auth[0]["resolved_at"] is not None
    diagnosis = auth[0]["diagnosis"]
    assert diagnosis["verdict"] == "token-revoked", diagnosis
    assert "token-drift" not in [f["code"] for f in diagnosis["findings"]]
    assert diagnosis["working_token"] == new_fp and any(new_fp in line for line in diagnosis["recovery"])
    rate = [i for i in scan["incidents"] if i["rule"] == "error-rate"]
    assert [i.get("inhibited_by") for i in rate] == [auth[0]["id"]]
