"""The `snapwatch token` explanation: plain text and JSON, never the token nor its signature."""

from __future__ import annotations

import json
import secrets
import string
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from snapwatch.cli.token_text import explain, to_json
from snapwatch.ingest.tokens import inspect, normalize
from tests.helpers.tokens import NBF, canvas
from tests.helpers.tokens import assert_clean as assert_token_absent

NOW = datetime(2025, 12, 5, 0, 13, 20, tzinfo=UTC)  # 1 day 2 hours after nbf
SOURCE = "SNAP_ACCESS_TOKEN in /srv/app/.env"


def assert_clean(text: str, raw: str) -> None:
    assert_token_absent(text, raw)
    token = normalize(raw)
    signature = token.rsplit(".", 1)[-1]
    if token.count(".") == 2 and len(signature) >= 11:
        assert signature not in text


def render_both(raw: str, now: datetime = NOW) -> tuple[list[str], dict[str, object]]:
    report = inspect(raw)
    lines = explain(report, SOURCE, now)
    data = to_json(report, SOURCE)
    assert_clean("\n".join(lines), raw)
    assert_clean(json.dumps(data, ensure_ascii=False), raw)
    return lines, data


def test_canvas_production_explained_as_normal() -> None:
    token = canvas()
    lines, _ = render_both(token)
    text = "\n".join(lines)
    assert "A Canvas S2S JWT, the format Business Manager issues for Conversions API tokens" in text
    assert "these claims are normal" in text
    assert "Environment (from sub): PRODUCTION." in lines
    assert "Issued (nbf) 2025-12-03T22:13:20+00:00, 1 day 2 hours ago." in lines
    assert any("does not expire by its claims" in line for line in lines)
    assert not any("Expired" in line or "Problem" in line for line in lines)
    report = inspect(token)
    assert lines[0] == f"Token {report.fingerprint}, {len(token)} characters, from {SOURCE}."
    assert f"Hint: {token[:6]}…{token[-4:]}" in text


def test_canvas_staging_explained() -> None:
    lines, data = render_both(canvas("STAGING"))
    text = "\n".join(lines)
    assert "STAGING" in text and "Camera Kit" in text
    assert data["kind"] == "canvas-s2s-staging"
    assert data["environment"] == "STAGING"


def test_other_jwt_with_past_exp() -> None:
    token = jwt.encode({"sub": "user-1", "exp": NBF}, "k" * 32, algorithm="HS256")
    lines, data = render_both(token)
    assert "Expired (exp) 2025-12-03T22:13:20+00:00, 1 day 2 hours ago." in lines
    assert not any("does not expire" in line for line in lines)
    assert any("OAuth access token" in line for line in lines)
    assert data["exp"] == "2025-12-03T22:13:20+00:00"
    assert data["kind"] == "jwt-other"


def test_future_nbf_is_not_yet_valid() -> None:
    lines, _ = render_both(canvas(nbf=int((NOW + timedelta(minutes=45)).timestamp())))
    assert any("not yet valid" in line and "in 45 minutes" in line for line in lines)


@pytest.mark.parametrize(
    ("wrap", "expected"),
    [
        (lambda t: f'"{t}"', ["Problem (quoted)"]),
        (lambda t: f"{t}\n", ["Problem (whitespace)"]),
        (lambda t: f"Bearer {t}", ["Problem (bearer-prefix)"]),
        (lambda t: f"'Bearer {t}'\n", ["Problem (whitespace)", "Problem (quoted)", "Problem (bearer-prefix)"]),
        (lambda t: t[:-15], ["Problem (truncated)"]),
        (lambda t: t[:150], ["Problem (truncated)"]),
        (lambda t: t[:90] + " " + t[90:], ["Problem (bad-characters)"]),
    ],
)
def test_each_defect_says_what_to_do(wrap: object, expected: list[str]) -> None:
    raw = wrap(canvas())  # type: ignore[operator]
    lines, data = render_both(raw)
    problems = [line.split(":")[0] for line in lines if line.startswith("Problem")]
    assert problems == expected
    assert data["defects"] == [p.removeprefix("Problem (").removesuffix(")") for p in expected]
    assert not any(line.startswith("Well-formed") for line in lines)


def test_opaque_and_garbage() -> None:
    token = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40))
    lines, data = render_both(token)
    assert any("not a JWT" in line for line in lines)
    assert data["header"] == {} and data["claims"] == {}
    lines, data = render_both("short")
    assert data["kind"] == "malformed"
    assert any("Not a usable token" in line for line in lines)


def test_json_shape() -> None:
    token = canvas()
    report = inspect(token)
    data = to_json(report, None)
    assert set(data) >= {
        "fingerprint",
        "kind",
        "header",
        "claims",
        "nbf",
        "exp",
        "environment",
        "defects",
        "source",
    }
    assert data["fingerprint"] == report.fingerprint
    assert data["kind"] == "canvas-s2s"
    assert data["header"] == {"alg": "HS256", "kid": "CanvasS2SHMACProd", "typ": "JWT"}
    assert data["nbf"] == "2025-12-03T22:13:20+00:00"
    assert data["exp"] is None
    assert data["environment"] == "PRODUCTION"
    assert data["defects"] == []
    assert data["source"] is None
    assert json.loads(json.dumps(data)) == data
    assert_clean(json.dumps(data), token)
