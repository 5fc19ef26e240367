"""Token forensics: inspection, defects, the configured sources and the systemd restart check."""

from __future__ import annotations

import os
import pickle
import secrets
import string
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapwatch.config import TokenConfig
from snapwatch.errors import SourceError
from snapwatch.ingest.tokens import (
    DEFECT_FINDINGS,
    ConfiguredToken,
    Defect,
    Secret,
    fingerprint,
    hint_of,
    inspect,
    normalize,
)
from snapwatch.model import FindingCode, TokenKind
from snapwatch.run.configured import load_configured, service_restart_pending
from tests.helpers.systemd import fake_systemctl
from tests.helpers.tokens import assert_clean, canvas, jwt_segment


def test_canvas_production_is_normal() -> None:
    token = canvas()
    report = inspect(token)
    assert report.kind is TokenKind.CANVAS_S2S
    assert report.defects == ()
    assert report.environment == "PRODUCTION"
    assert report.header == {"alg": "HS256", "kid": "CanvasS2SHMACProd", "typ": "JWT"}
    assert report.claims["aud"] == "canvas-canvasapi"
    assert report.nbf == datetime(2025, 12, 3, 22, 13, 20, tzinfo=UTC)
    assert report.exp is None  # no exp: never expires by its claims
    assert report.length == len(token)
    assert 300 <= report.length <= 360
    assert report.fingerprint == fingerprint(token)
    assert report.hint == f"{token[:6]}…{token[-4:]}"
    assert_clean(repr(report), token)
    assert_clean(str(report), token)


def test_canvas_staging() -> None:
    report = inspect(canvas("STAGING"))
    assert report.kind is TokenKind.CANVAS_S2S_STAGING
    assert report.environment == "STAGING"
    assert report.defects == ()


def test_non_canvas_jwt_with_past_exp() -> None:
    token = jwt.encode({"sub": "user", "exp": 1700000000}, "k" * 32, algorithm="HS256")
    report = inspect(token)
    assert report.kind is TokenKind.JWT_OTHER
    assert report.exp == datetime.fromtimestamp(1700000000, tz=UTC)
    assert report.nbf is None
    assert report.environment is None
    assert report.defects == ()


def test_opaque() -> None:
    token = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(48))
    report = inspect(token)
    assert report.kind is TokenKind.OPAQUE
    assert (report.header, report.claims, report.defects) == ({}, {}, ())
    assert_clean(repr(report), token)


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(lambda t: t[:200], id="inside-claims"),
        pytest.param(lambda t: t[: t.rindex(".") + 1], id="signature-gone"),
        pytest.param(lambda t: t[:-20], id="signature-short"),
        pytest.param(lambda t: t[:-2], id="signature-bad-padding"),
        pytest.param(lambda t: t.split(".")[0], id="header-only"),
    ],
)
def test_truncated(cut: object) -> None:
    token = canvas()
    value = cut(token)  # type: ignore[operator]
    report = inspect(value)
    assert Defect.TRUNCATED in report.defects
    assert Defect.BAD_CHARACTERS not in report.defects
    assert_clean(repr(report), value)


def test_quoted_newline_and_bearer() -> None:
    token = canvas()
    for raw, expected in [
        (f'"{token}"', (Defect.QUOTED,)),
        (f"'{token}'", (Defect.QUOTED,)),
        (f"{token}\n", (Defect.WHITESPACE,)),
        (f"{token}\r\n", (Defect.WHITESPACE,)),
        (f"  {token}", (Defect.WHITESPACE,)),
        (f'"{token} "', (Defect.QUOTED, Defect.WHITESPACE)),
        (f"Bearer {token}", (Defect.BEARER_PREFIX,)),
        (f"bearer  {token}", (Defect.BEARER_PREFIX,)),
        (f'"Bearer {token}"\n', (Defect.WHITESPACE, Defect.QUOTED, Defect.BEARER_PREFIX)),
    ]:
        report = inspect(raw)
        assert report.defects == expected, repr(raw[:3])
        # The identity is the token as sent after normalisation: the same fingerprint and kind.
        assert report.fingerprint == fingerprint(token)
        assert report.kind is TokenKind.CANVAS_S2S
        assert_clean(repr(report), token)


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda t: t[:100] + " " + t[100:], id="inner-space"),
        pytest.param(lambda t: t[:100] + "\n" + t[100:], id="inner-newline"),
        pytest.param(lambda t: f"\"'{t}'\"", id="two-pairs-of-quotes"),
        pytest.param(lambda t: t[:50] + "é" + t[50:], id="non-ascii"),
    ],
)
def test_bad_characters(mangle: object) -> None:
    value = mangle(canvas())  # type: ignore[operator]
    report = inspect(value)
    assert Defect.BAD_CHARACTERS in report.defects
    assert report.kind is TokenKind.MALFORMED


def test_empty_and_tiny_values_do_not_crash_or_reveal() -> None:
    assert inspect("").kind is TokenKind.MALFORMED
    assert inspect("").hint == "…"
    report = inspect("abcdefgh")
    assert report.kind is TokenKind.MALFORMED
    assert report.hint == "ab…h"


def test_every_defect_maps_to_a_finding() -> None:
    assert set(DEFECT_FINDINGS) == set(Defect)
    assert DEFECT_FINDINGS[Defect.QUOTED] is FindingCode.TOKEN_QUOTED
    assert DEFECT_FINDINGS[Defect.TRUNCATED] is FindingCode.TOKEN_MALFORMED


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=0, max_size=400))
def test_inspect_never_raises_and_never_reveals(raw: str) -> None:
    report = inspect(raw)
    token = normalize(raw)
    assert report.length == len(token)
    assert len(report.hint) <= 11
    # The fields whose text depends on the value (the rest are enums, numbers and times).
    shown = f"{report.hint} {report.header} {report.claims} {report.fingerprint}"
    if len(token) >= 11:
        assert_clean(shown, token)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["alg", "kid", "typ", "crit", "x"]), _json_values, max_size=4),
    st.dictionaries(st.sampled_from(["nbf", "exp", "sub", "iat", "aud", "y"]), _json_values, max_size=5),
    st.text(alphabet=string.ascii_letters + string.digits + "-_", max_size=90),
)
def test_inspect_survives_any_decodable_jwt(header: dict[str, object], claims: dict[str, object], sig: str) -> None:
    token = f"{jwt_segment(header)}.{jwt_segment(claims)}.{sig}"
    report = inspect(token)
    assert report.kind in set(TokenKind)
    assert report.nbf is None or report.nbf.tzinfo is not None
    if not sig:
        assert report.kind is TokenKind.MALFORMED


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=48),
       st.sampled_from(["", "=", "==", "==="]))
def test_a_signature_is_truncated_exactly_when_a_jwt_library_cannot_load_it(body: str, padding: str) -> None:
    # The check is our own (no JWT library on the scan path): it must agree with PyJWT's own reading.
    token = f"{jwt_segment({'alg': 'none'})}.{jwt_segment({'sub': 'user'})}.{body}{padding}"
    try:
        jwt.decode(token, options={"verify_signature": False})
        loadable = True
    except jwt.PyJWTError:
        loadable = False
    assert (Defect.TRUNCATED not in inspect(token).defects) is loadable


def test_hint_is_never_the_whole_value() -> None:
    for n in range(40):
        value = "x" * n
        shown = hint_of(value).replace("…", "")
        assert len(shown) <= min(10, n // 2)


# --- Secret and configured sources -------------------------------------------------------------------------


def test_secret_hides_its_value() -> None:
    token = canvas()
    secret = Secret(token)
    assert secret.reveal() == token
    assert fingerprint(token) in repr(secret)
    assert_clean(repr(secret) + str(secret) + f"{secret}", token)
    assert secret == Secret(token)
    assert secret != Secret(canvas())
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    configured = ConfiguredToken(secret, "SNAP_ACCESS_TOKEN in /srv/app/.env", "pixel-1")
    assert_clean(repr(configured), token)
    assert configured.fingerprint == fingerprint(token)
    assert configured.report().kind is TokenKind.CANVAS_S2S


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_env_file_with_export_quotes_and_comments(tmp_path: Path) -> None:
    token = canvas()
    env = write(
        tmp_path / ".env",
        f"# Snap settings\nexport SNAP_PIXEL_ID='pix-42'  # comment\nSNAP_ACCESS_TOKEN=\"{token}\" # the CAPI token\n",
    )
    got = load_configured(TokenConfig(env_file=env), {})
    assert got is not None
    assert got.raw.reveal() == token  # dotenv removed its own quotes and the comment
    assert got.pixel == "pix-42"
    assert got.source == f"SNAP_ACCESS_TOKEN in {env}"
    assert got.path == env
    assert got.mtime == datetime.fromtimestamp(env.stat().st_mtime, tz=UTC)
    assert got.report().defects == ()
    assert_clean(repr(got), token)


def test_env_file_quotes_that_survive_parsing_are_a_defect(tmp_path: Path) -> None:
    token = canvas()
    env = write(tmp_path / ".env", f"SNAP_ACCESS_TOKEN='\"{token}\"'\n")
    got = load_configured(TokenConfig(env_file=env), {})
    assert got is not None
    assert got.report().defects == (Defect.QUOTED,)


def test_env_file_multiline_value_is_bad_characters(tmp_path: Path) -> None:
    token = canvas()
    env = write(tmp_path / ".env", f'SNAP_ACCESS_TOKEN="{token[:150]}\n{token[150:]}"\n')
    got = load_configured(TokenConfig(env_file=env), {})
    assert got is not None
    assert Defect.BAD_CHARACTERS in got.report().defects


def test_missing_key_falls_through_to_env_then_file(tmp_path: Path) -> None:
    token = canvas()
    env = write(tmp_path / ".env", "OTHER=1\nSNAP_ACCESS_TOKEN=\n")
    cfg = TokenConfig(env_file=env, env="SNAP_TOKEN")
    got = load_configured(cfg, {"SNAP_TOKEN": token, "SNAP_PIXEL_ID": "pix-env"})
    assert got is not None
    assert got.raw.reveal() == token
    assert got.source == "environment variable SNAP_TOKEN"
    assert got.pixel == "pix-env"  # not in the .env: the environment's value
    assert got.path is None and got.mtime is None

    token_file = write(tmp_path / "token", token + "\n")
    got = load_configured(TokenConfig(env_file=env, env="SNAP_TOKEN", file=token_file), {})
    assert got is not None
    assert got.source == f"token file {token_file}"
    assert got.raw.reveal() == token  # one final newline is the file's, not the token's
    assert got.report().defects == ()


@pytest.mark.parametrize(
    ("content", "defects"),
    [
        ("{t}\r\n", ()),
        ("{t}", ()),
        ("{t}\n\n", (Defect.WHITESPACE,)),
        ("{t} \n", (Defect.WHITESPACE,)),
    ],
)
def test_token_file_line_endings(tmp_path: Path, content: str, defects: tuple[Defect, ...]) -> None:
    token = canvas()
    path = write(tmp_path / "token", content.format(t=token))
    got = load_configured(TokenConfig(file=path), {})
    assert got is not None
    assert got.report().defects == defects
    assert got.fingerprint == fingerprint(token)


def test_no_token_anywhere_is_none(tmp_path: Path) -> None:
    env = write(tmp_path / ".env", "SNAP_ACCESS_TOKEN\nSNAP_PIXEL_ID=1\n")
    assert load_configured(TokenConfig(env_file=env, env="SNAP_TOKEN"), {"SNAP_TOKEN": "  "}) is None
    assert load_configured(TokenConfig(), {}) is None


def test_missing_or_unreadable_file_is_a_source_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.env"
    with pytest.raises(SourceError, match=r"nope\.env: \.env file not found"):
        load_configured(TokenConfig(env_file=missing), {})
    binary = tmp_path / "token.bin"
    binary.write_bytes(b"\xff\xfe\x00token")
    with pytest.raises(SourceError, match="not UTF-8") as caught:
        load_configured(TokenConfig(file=binary), {})
    assert "\n" not in str(caught.value)
    with pytest.raises(SourceError, match="cannot read"):
        load_configured(TokenConfig(env_file=tmp_path), {})  # a directory


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied_is_a_source_error(tmp_path: Path) -> None:
    env = write(tmp_path / ".env", "SNAP_ACCESS_TOKEN=x\n")
    env.chmod(0)
    with pytest.raises(SourceError, match="cannot read"):
        load_configured(TokenConfig(env_file=env), {})


# --- the systemd restart check -----------------------------------------------------------------------------


def test_restart_pending_compares_env_mtime_with_service_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started = datetime(2025, 12, 3, 23, 0, tzinfo=UTC)
    bindir = fake_systemctl(tmp_path / "bin", f"@{int(started.timestamp())}")
    monkeypatch.setenv("PATH", str(bindir))
    assert service_restart_pending("ruxo-backend.service", started + timedelta(minutes=5)) is True
    assert service_restart_pending("ruxo-backend.service", started - timedelta(minutes=5)) is False
    assert service_restart_pending("ruxo-backend.service", None) is None
    argv = (bindir / "argv").read_text(encoding="utf-8").splitlines()[0]
    assert argv == "show -p ActiveEnterTimestamp --value --timestamp=unix -- ruxo-backend.service"


@pytest.mark.parametrize(("output", "code"), [("", 0), ("n/a", 0), ("@0", 0), ("", 1)])
def test_restart_pending_unknowable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: str, code: int) -> None:
    monkeypatch.setenv("PATH", str(fake_systemctl(tmp_path / "bin", output, code)))
    assert service_restart_pending("x.service", datetime(2025, 1, 1, tzinfo=UTC)) is None


def test_restart_pending_without_systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert service_restart_pending("x.service", datetime(2025, 1, 1, tzinfo=UTC)) is None


def test_restart_pending_with_the_real_systemctl_never_raises() -> None:
    # Without systemd running (containers, CI) systemctl fails; with it, a unit that never started has
    # no start time: either way the answer is "unknowable", not an exception.
    assert service_restart_pending("snapwatch-test-no-such.service", datetime(2025, 1, 1, tzinfo=UTC)) is None
