"""Writes the golden diagnosis scenarios: scenario.json, .env, backend.log and expected.json per folder.

Run from the repository root: ``python tests/data/scenarios/build.py``. The output is committed; the
tests only read it. Tokens are made up here (HMAC with a throwaway key): they are not real Snap tokens.
Log times are UTC, written without a zone (scan them with ``timezone: UTC``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt

HERE = Path(__file__).parent
T0 = datetime(2025, 12, 3, 23, 0, 0, tzinfo=UTC)
PIXEL = "5bf81ee1-15b1-4dc1-b636-d7dae49b950e"
PIXEL2 = "9d2a1c44-7e1f-4a3b-8c55-0f6e2d1b3a77"
SEP = "=" * 100
OK_V3 = '{"status": "VALID", "reason": "Events have been processed successfully."}'
OK_V2 = '{"status": "SUCCESS", "reason": "All records processed"}'
BAD = '{"status": "UNKNOWN", "text": "Invalid access token"}'


def canvas(nbf: datetime, env: str = "PRODUCTION", seed: str = "a") -> str:
    claims = {"aud": "canvas-canvasapi", "iss": "canvas-s2stoken", "nbf": int(nbf.timestamp()),
              "sub": f"0c7b1f6e-3a4e-4b9c-9d1e-5a6b7c8d9e0{seed}~{env}~b1c2d3e4-aaaa-bbbb-cccc-0123456789ab"}
    return jwt.encode(claims, "scenario-signing-key-not-a-secret-" + seed, algorithm="HS256",
                      headers={"kid": "CanvasS2SHMACProd", "typ": "JWT"})


OLD = canvas(T0 - timedelta(days=90), seed="a")
NEW = canvas(T0 - timedelta(days=2), seed="b")
FRESH = canvas(T0 + timedelta(minutes=25), seed="c")  # issued 25 min into the first streak's day
FUTURE = canvas(T0 + timedelta(days=1), seed="d")
STAGING = canvas(T0 - timedelta(days=30), env="STAGING", seed="e")
OAUTH = jwt.encode({"sub": "oauth-user", "exp": int((T0 + timedelta(minutes=20)).timestamp()),
                    "scope": "snapchat-offline-conversions-api"},
                   "scenario-signing-key-not-a-secret-oauth", algorithm="HS256")
OPAQUE = "sk_live_8f3a9c2e7b1d4f6a0c5e9b2d7f1a3c8e"
TRUNCATED = OLD[: len(OLD) - 20]
ODD = OLD[:-1]  # a signature one character short: it looks truncated, yet Snap accepted it


def v3(token: str | None, pixel: str = PIXEL, quote: str = "") -> str:
    base = f"https://tr.snapchat.com/v3/{pixel}/events"
    return base if token is None else f"{base}?access_token={quote}{{{token}}}{quote.replace('Bearer%20', '')}"


V2 = "https://tr.snapchat.com/v2/conversion"


def run(at: datetime, url: str, status: int, n: int, every: int = 30, body: str | None = None,
        event: str = "PURCHASE") -> dict[str, object]:
    if body is None:
        body = (OK_V2 if "/v2/" in url else OK_V3) if 200 <= status < 300 else BAD
    return {"at": at.isoformat(), "url": url, "status": status, "repeat": n, "every": every, "body": body,
            "event": event}


def after(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


INVALID = ('{"status": "INVALID", "reason": "Events failed validation", "event": 0, "errors": '
           '{"codes": ["PRICE_MISSING"], "error_msgs": ["PURCHASE event requires price and currency"]}}')

# name: (description, tokens, env token name or raw value template, exchanges, extra, expected)
SCENARIOS: dict[str, dict[str, object]] = {
    "placement-change": dict(
        description="the same Canvas token got 200s with access_token in the URL; then requests stop carrying "
        "it (header only) and 401s follow",
        tokens={"A": OLD}, env="{A}", incident="auth-failures", service="ruxo-backend.service",
        exchanges=[run(T0, v3("A"), 200, 30), run(after(20), v3(None), 401, 10)],
        expected={"verdict": "auth-placement", "include": ["token-previously-accepted", "token-in-log"],
                  "exclude": ["token-rejected-for-pixel", "token-not-canvas", "token-staging", "token-drift"],
                  "ruled_out_contains": ["token type"]},
    ),
    "drift-restart-pending": dict(
        description="the .env holds a new token; the backend still sends the old one, which now gets 401",
        tokens={"A": OLD, "B": NEW}, env="{B}", incident="auth-failures", service="ruxo-backend.service",
        restart_pending=True,
        exchanges=[run(T0, v3("A"), 200, 20), run(after(15), v3("A"), 401, 10)],
        expected={"verdict": "token-drift", "include": ["token-previously-accepted"],
                  "exclude": ["token-rejected-for-pixel", "token-changed"],
                  "remediation_contains": {"token-drift": "sudo systemctl restart ruxo-backend.service"}},
    ),
    "never-accepted": dict(
        description="a well-formed, well-placed Canvas token never accepted for this pixel",
        tokens={"C": NEW}, env="{C}", incident="auth-failures",
        exchanges=[run(T0, v3("C"), 401, 10)],
        expected={"verdict": "token-rejected-for-pixel",
                  "exclude": ["token-previously-accepted", "token-not-canvas", "auth-placement"],
                  "remediation_contains": {"token-rejected-for-pixel": [
                      "Business Manager → Business Details → Conversions API Tokens", "Organization Admin",
                      PIXEL]}},
    ),
    "never-accepted-probe-accepts": dict(
        description="the same, but Snap's validate endpoint accepts the token now",
        tokens={"C": NEW}, env="{C}", incident="auth-failures",
        probe={"outcome": "accepted", "status": 200, "detail": "VALID"},
        exchanges=[run(T0, v3("C"), 401, 10)],
        expected={"verdict": "unknown", "include": ["probe-accepted"], "exclude": ["token-rejected-for-pixel"],
                  "ruled_out_contains": ["Canvas-vs-CAPI mismatch"]},
    ),
    "never-accepted-probe-rejects": dict(
        description="never accepted, and the validate endpoint rejects it too",
        tokens={"C": NEW}, env="{C}", incident="auth-failures",
        probe={"outcome": "rejected", "status": 401, "detail": "HTTP 401"},
        exchanges=[run(T0, v3("C"), 401, 10)],
        expected={"verdict": "token-rejected-for-pixel", "include": ["probe-rejected"]},
    ),
    "never-accepted-probe-fails": dict(
        description="never accepted; the probe got no answer, which says nothing",
        tokens={"C": NEW}, env="{C}", incident="auth-failures",
        probe={"outcome": "failed", "status": None, "detail": "timed out after 10 s"},
        exchanges=[run(T0, v3("C"), 401, 10)],
        expected={"verdict": "token-rejected-for-pixel", "include": ["probe-failed"]},
    ),
    "staging-token": dict(
        description="a ~STAGING~ Canvas token", tokens={"S": STAGING}, env="{S}", incident="auth-failures",
        exchanges=[run(T0, v3("S"), 401, 10)],
        expected={"verdict": "token-staging", "exclude": ["token-rejected-for-pixel"]},
    ),
    "oauth-expired": dict(
        description="a non-Canvas JWT accepted until its exp passed",
        tokens={"O": OAUTH}, env="{O}", incident="auth-failures",
        exchanges=[run(T0, v3("O"), 200, 30, every=30), run(after(21), v3("O"), 401, 10)],
        expected={"verdict": "token-expired", "include": ["token-not-canvas", "token-previously-accepted"],
                  "exclude": ["token-rejected-for-pixel"]},
    ),
    "quoted-token": dict(
        description="the .env value carries a second pair of quotes that reach the URL",
        tokens={"A": OLD}, env="'\"{A}\"'", incident="auth-failures",
        exchanges=[run(T0, v3("A", quote="%22"), 401, 10)],
        expected={"verdict": "token-quoted", "exclude": ["token-rejected-for-pixel"]},
    ),
    "newline-token": dict(
        description="the .env value ends in a newline inside double quotes",
        tokens={"A": OLD}, env="\"{A}\\n\"", incident="auth-failures",
        exchanges=[run(T0, v3("A") + "%0A", 401, 10)],
        expected={"verdict": "token-whitespace", "exclude": ["token-rejected-for-pixel"]},
    ),
    "bearer-token": dict(
        description="the .env value starts with 'Bearer '", tokens={"A": OLD}, env="\"Bearer {A}\"",
        incident="auth-failures",
        exchanges=[run(T0, f"https://tr.snapchat.com/v3/{PIXEL}/events?access_token=Bearer%20{{A}}", 401, 10)],
        expected={"verdict": "token-bearer-prefix", "exclude": ["token-rejected-for-pixel"]},
    ),
    "truncated-token": dict(
        description="the token was cut short on copy", tokens={"T": TRUNCATED}, env="{T}",
        incident="auth-failures", exchanges=[run(T0, v3("T"), 401, 10)],
        expected={"verdict": "token-malformed", "exclude": ["token-rejected-for-pixel"]},
    ),
    "opaque-token": dict(
        description="an opaque string that is not a Canvas S2S JWT", tokens={"Q": OPAQUE}, env="{Q}",
        incident="auth-failures", exchanges=[run(T0, v3("Q"), 401, 10)],
        expected={"verdict": "token-not-canvas", "exclude": ["token-rejected-for-pixel", "token-expired"]},
    ),
    "not-yet-valid": dict(
        description="a token whose nbf is after the failures", tokens={"F": FUTURE}, env="{F}",
        incident="auth-failures", exchanges=[run(T0, v3("F"), 401, 10)],
        expected={"verdict": "token-not-yet-valid"},
    ),
    "token-changed-fresh": dict(
        description="a freshly issued token replaced the accepted one, and 401s began",
        tokens={"A": OLD, "N": FRESH}, env="{N}", incident="auth-failures",
        exchanges=[run(T0, v3("A"), 200, 60), run(after(30), v3("N"), 401, 10)],
        expected={"verdict": "token-changed", "include": ["token-recently-issued", "token-rejected-for-pixel"],
                  "exclude": ["token-drift", "token-previously-accepted"]},
    ),
    "token-missing": dict(
        description="no token in the .env and none in the requests", tokens={}, env=None,
        incident="auth-failures", exchanges=[run(T0, v3(None), 401, 10)],
        expected={"verdict": "token-missing", "include": ["auth-placement"]},
    ),
    "pixel-change": dict(
        description="the pixel changed at the streak start", tokens={"A": OLD}, env="{A}",
        incident="auth-failures",
        exchanges=[run(T0, v3("A"), 200, 20), run(after(12), v3("A", pixel=PIXEL2), 401, 10)],
        expected={"verdict": "pixel-changed",
                  "exclude": ["token-rejected-for-pixel", "token-previously-accepted", "endpoint-changed"],
                  "ruled_out_contains": ["token type"]},
    ),
    "pixel-token-swapped": dict(
        description="the .env has the pixel id and the token swapped: the token sits in the URL's pixel slot",
        tokens={"A": OLD}, env=PIXEL, incident="auth-failures",
        exchanges=[run(T0, f"https://tr.snapchat.com/v3/{{A}}/events?access_token={PIXEL}", 401, 10)],
        expected={"verdict": "pixel-malformed", "exclude": ["token-rejected-for-pixel", "token-previously-accepted"]},
    ),
    "endpoint-v2-to-v3": dict(
        description="the backend moved from v2 to v3 and 401s began", tokens={"A": OLD}, env="{A}",
        incident="auth-failures",
        exchanges=[run(T0, V2, 200, 20), run(after(12), v3("A"), 401, 10)],
        expected={"verdict": "endpoint-changed", "exclude": ["token-rejected-for-pixel", "token-changed"]},
    ),
    "v2-deprecated": dict(
        description="all traffic goes to v2 and is accepted (diagnosing the present)", tokens={"A": OLD},
        env="{A}", incident=None, exchanges=[run(T0, V2, 200, 20)],
        expected={"verdict": "v2-deprecated", "exclude": ["token-in-log"]},
    ),
    "revoked": dict(
        description="a previously accepted token starts failing with no change in the requests",
        tokens={"A": OLD}, env="{A}", incident="auth-failures", service="ruxo-backend.service",
        exchanges=[run(T0, v3("A"), 200, 20), run(after(12), v3("A"), 401, 10)],
        expected={"verdict": "token-revoked", "include": ["token-previously-accepted"],
                  "exclude": ["token-rejected-for-pixel", "token-drift", "auth-placement"],
                  "ruled_out_contains": ["token change", "token type"],
                  "remediation_contains": {"token-revoked": [
                      "Business Manager → Business Details → Conversions API Tokens", "SNAP_ACCESS_TOKEN in ",
                      "sudo systemctl restart ruxo-backend.service", "snapwatch diagnose --probe"]}},
    ),
    "odd-signature-accepted": dict(
        description="a token whose signature looks cut short was accepted 20 times, then refused with nothing "
        "changed: its shape is a note, the verdict is the revocation",
        tokens={"D": ODD}, env="{D}", incident="auth-failures",
        exchanges=[run(T0, v3("D"), 200, 20), run(after(12), v3("D"), 401, 10)],
        expected={"verdict": "token-revoked", "include": ["token-malformed", "token-previously-accepted"],
                  "exclude": ["token-rejected-for-pixel", "token-drift"],
                  "title_contains": {"token-malformed": "but Snap accepted it for pixel"}},
    ),
    "v2-unlogged": dict(
        description="v2 requests (token in an unlogged header) accepted, then refused with nothing changed",
        tokens={"A": OLD}, env="{A}", incident="auth-failures",
        exchanges=[run(T0, V2, 200, 20), run(after(12), V2, 401, 10)],
        expected={"verdict": "token-revoked", "include": ["token-unlogged", "v2-deprecated"],
                  "exclude": ["token-missing", "token-rejected-for-pixel", "auth-placement", "token-bearer-prefix"],
                  "evidence_contains": {"token-unlogged": "does not show its token"}},
    ),
    "rate-limited": dict(
        description="429s", tokens={"A": OLD}, env="{A}", incident="rate-limited",
        exchanges=[run(T0, v3("A"), 200, 20, every=1),
                   run(after(0.5), v3("A"), 429, 10, every=1, body='{"status": "INVALID", "reason": "Too many"}')],
        expected={"verdict": "rate-limited", "exclude": ["token-rejected-for-pixel", "token-drift"]},
    ),
    "server-errors": dict(
        description="503s", tokens={"A": OLD}, env="{A}", incident="server-errors",
        exchanges=[run(T0, v3("A"), 200, 20), run(after(12), v3("A"), 503, 10, body="Service Unavailable")],
        expected={"verdict": "server-errors", "exclude": ["token-rejected-for-pixel", "token-drift"],
                  "title_contains": {"server-errors": "not your token"}},
    ),
    "invalid-events": dict(
        description="400s for a missing price", tokens={"A": OLD}, env="{A}", incident="invalid-events",
        exchanges=[run(T0, v3("A"), 200, 20), run(after(12), v3("A"), 400, 10, body=INVALID)],
        expected={"verdict": "invalid-events",
                  "evidence_contains": {"invalid-events": "5× PURCHASE event requires price and currency"}},
    ),
    "silence": dict(
        description="no requests for an hour", tokens={"A": OLD}, env="{A}", incident="silence",
        now=after(75).isoformat(), exchanges=[run(T0, v3("A"), 200, 20)],
        expected={"verdict": "log-silent"},
    ),
    "log-gap": dict(
        description="a rotated file vanished while snapwatch was down (diagnosing the present)",
        tokens={"A": OLD}, env="{A}", incident=None,
        log_gaps=["backend.log.1 was rotated away unread while snapwatch was stopped "
                  "(2025-12-03T22:10:00+00:00 to 2025-12-03T22:55:00+00:00)"],
        exchanges=[run(T0, v3("A"), 200, 20)],
        expected={"verdict": "log-gap", "include": ["token-in-log"]},
    ),
    "token-in-log": dict(
        description="healthy traffic whose URLs carry the token (diagnosing the present)",
        tokens={"A": OLD}, env="{A}", incident=None, exchanges=[run(T0, v3("A"), 200, 20)],
        expected={"verdict": "token-in-log", "exclude": ["token-drift", "auth-placement"]},
    ),
}


def expand(exchanges: list[dict[str, object]]) -> list[dict[str, object]]:
    """The exchanges one by one (``repeat`` copies ``every`` seconds apart)."""
    out = []
    for e in exchanges:
        start = datetime.fromisoformat(str(e["at"]))
        for i in range(int(str(e.get("repeat", 1)))):
            out.append({**e, "at": (start + timedelta(seconds=i * int(str(e.get("every", 30))))).isoformat()})
    return out


def render_log(exchanges: list[dict[str, object]], tokens: dict[str, str]) -> str:
    lines = []
    for e in expand(exchanges):
        ts = datetime.fromisoformat(str(e["at"])).strftime("%Y-%m-%d %H:%M:%S")
        p = f"{ts} - INFO - "
        url = str(e["url"]).format(**tokens)
        api = "v2" if "/v2/" in url else "v3"
        payload = json.dumps({"data": [{"event_name": e["event"], "action_source": "WEB"}]}, indent=2)
        lines += [p + SEP, f"{p}[OUT] OUTGOING REQUEST - {e['event']} Event ({api})", f"{p}URL: {url}",
                  f"{p}Method: POST", f"{p}Payload:", p + payload, p + SEP,
                  p + SEP, f"{p}[IN] INCOMING RESPONSE - {e['event']} Event", f"{p}Status Code: {e['status']}",
                  f"{p}Body: {e['body']}", p + SEP, p]
    return "\n".join(lines) + "\n"


def main() -> None:
    for name, spec in SCENARIOS.items():
        folder = HERE / name
        folder.mkdir(exist_ok=True)
        tokens: dict[str, str] = dict(spec["tokens"])  # type: ignore[call-overload]
        env = spec.get("env")
        env_text = f"SNAP_PIXEL_ID={PIXEL}\n"
        if env is not None:
            env_text = f"SNAP_ACCESS_TOKEN={str(env).format(**tokens)}\n" + env_text
        (folder / ".env").write_text(env_text)
        scenario = {k: v for k, v in spec.items() if k not in ("expected", "env")}
        (folder / "scenario.json").write_text(json.dumps(scenario, indent=1, ensure_ascii=False) + "\n")
        (folder / "expected.json").write_text(json.dumps(spec["expected"], indent=1, ensure_ascii=False) + "\n")
        (folder / "backend.log").write_text(render_log(spec["exchanges"], tokens))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
