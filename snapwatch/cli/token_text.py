"""Rendering a token explanation (``snapwatch token``) as plain text and JSON: never the token itself."""

from __future__ import annotations

from datetime import datetime, timedelta

from snapwatch.codec import duration
from snapwatch.diagnose.facts import BUSINESS_MANAGER_PATH
from snapwatch.ingest.tokens import Defect, TokenReport
from snapwatch.model import TokenKind

BUSINESS_MANAGER = BUSINESS_MANAGER_PATH

KIND_TEXT: dict[TokenKind, str] = {
    TokenKind.CANVAS_S2S: (
        "A Canvas S2S JWT, the format Business Manager issues for Conversions API tokens — these claims "
        "are normal (kid CanvasS2SHMACProd, aud canvas-canvasapi, iss canvas-s2stoken). Claims alone "
        "cannot tell a CAPI token from a Camera Kit one: only Snap's answer can (snapwatch diagnose --probe)."
    ),
    TokenKind.CANVAS_S2S_STAGING: (
        "A Canvas S2S JWT for Snap's STAGING environment. Every Conversions API token seen is PRODUCTION; "
        "staging tokens come from Camera Kit and are not accepted for a pixel. Generate a Conversions API "
        f"token in {BUSINESS_MANAGER}."
    ),
    TokenKind.JWT_OTHER: (
        "A JWT that is not Snap's long-lived Canvas S2S format: most likely a short-lived OAuth access "
        "token, which expires after 30 to 60 minutes. For a server, use a long-lived token from "
        f"{BUSINESS_MANAGER}."
    ),
    TokenKind.OPAQUE: (
        "An opaque string, not a JWT: not Snap's long-lived Canvas S2S format; most likely a short-lived "
        f"OAuth access token. For a server, use a long-lived token from {BUSINESS_MANAGER}."
    ),
    TokenKind.MALFORMED: ("Not a usable token: not a three-part JWT that decodes, and not a plausible opaque token."),
}

DEFECT_TEXT: dict[Defect, str] = {
    Defect.QUOTED: (
        "Surrounding quotes reach the request (they survive the .env parsing): remove the inner pair "
        "so the value is the bare token."
    ),
    Defect.WHITESPACE: (
        "Surrounding whitespace or a line break reaches the request: remove it (re-paste the token on "
        "one line, with no trailing space or newline)."
    ),
    Defect.BEARER_PREFIX: (
        "It starts with 'Bearer ': configure the bare token; the client adds 'Bearer ' itself where the "
        "API wants a header (v2), and v3 wants the bare token in the access_token query parameter."
    ),
    Defect.TRUNCATED: (
        "It looks cut off (a JWT part does not decode or its signature is too short): copy the whole "
        f"token again; if it was not saved when generated, generate a new one in {BUSINESS_MANAGER}."
    ),
    Defect.BAD_CHARACTERS: (
        "It holds characters no token has (inner spaces or line breaks, stray quotes, non-ASCII): "
        "copy the token again as plain text."
    ),
}


def _when(at: datetime, now: datetime) -> str:
    delta = now - at
    span = duration(delta, words=True, parts=2)
    return f"{span} ago" if delta >= timedelta(0) else f"in {span}"


def explain(report: TokenReport, source: str | None, now: datetime) -> list[str]:
    """Plain-language lines about the token: what it is, its environment and times, each defect with
    what to do, its fingerprint and hint. ``now`` judges ``nbf``/``exp``."""
    lines = [
        f"Token {report.fingerprint}, {report.length} characters" + (f", from {source}" if source else "") + ".",
        KIND_TEXT[report.kind],
    ]
    if report.environment:
        lines.append(f"Environment (from sub): {report.environment}.")
    if report.nbf is not None:
        if report.nbf > now:
            lines.append(f"Not valid before {report.nbf.isoformat()} ({_when(report.nbf, now)}): not yet valid.")
        else:
            lines.append(f"Issued (nbf) {report.nbf.isoformat()}, {_when(report.nbf, now)}.")
    if report.exp is not None:
        verb = "Expired" if report.exp <= now else "Expires"
        lines.append(f"{verb} (exp) {report.exp.isoformat()}, {_when(report.exp, now)}.")
    elif report.claims:
        lines.append(
            "No exp claim: it does not expire by its claims (it stays valid until it is deleted or "
            "regenerated in Business Manager)."
        )
    lines.extend(f"Problem ({defect}): {DEFECT_TEXT[defect]}" for defect in report.defects)
    if not report.defects and report.kind is not TokenKind.MALFORMED:
        lines.append("Well-formed: no quotes, whitespace, 'Bearer ' prefix or truncation.")
    lines.append(f"Fingerprint: {report.fingerprint} (names this token in snapwatch's output and alerts).")
    lines.append(f"Hint: {report.hint} (its first and last characters, to recognise it).")
    return lines


def to_json(report: TokenReport, source: str | None) -> dict[str, object]:
    """The token explanation as JSON-ready data: claims and header, never the token or its signature."""
    return {
        "fingerprint": report.fingerprint,
        "kind": str(report.kind),
        "header": dict(report.header),
        "claims": dict(report.claims),
        "nbf": report.nbf.isoformat() if report.nbf else None,
        "exp": report.exp.isoformat() if report.exp else None,
        "environment": report.environment,
        "length": report.length,
        "hint": report.hint,
        "defects": [str(defect) for defect in report.defects],
        "source": source,
    }
