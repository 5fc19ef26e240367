"""The one table of Snap facts: token kinds, endpoint versions, and per finding its severity and remedies.

When Snap changes (a new endpoint version, a new token format, a moved Business Manager page), this is
the file to edit. Templates use ``str.format`` placeholders; every placeholder must be one of
``FIELDS``, which the diagnosis fills from the configuration and the evidence.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass

from snapwatch.model import Api, FindingCode, Placement, Severity, TokenKind

BUSINESS_MANAGER_PATH = "Business Manager → Business Details → Conversions API Tokens"
GENERATE_PATH = BUSINESS_MANAGER_PATH + " → Generate Token"
TOKEN_QUERY_PARAMETER = "access_token"
SEND_HOST = "https://tr.snapchat.com"
STAGING_HOST = "https://tr-shadow.snapchat.com"
MAX_REQUESTS_PER_SECOND = 1000  # Snap's recommendation per integration
MAX_EVENTS_PER_BATCH = 2000
MAX_EVENT_AGE_DAYS = 37

TOKEN_KINDS: Mapping[TokenKind, str] = {
    TokenKind.CANVAS_S2S: (
        "a Canvas S2S JWT (kid CanvasS2SHMACProd, aud canvas-canvasapi, iss canvas-s2stoken), the format "
        "Business Manager issues for Conversions API tokens; it has no exp and does not expire by its claims"
    ),
    TokenKind.CANVAS_S2S_STAGING: (
        "a Canvas S2S JWT with ~STAGING~ in sub: a staging token (Camera Kit staging tokens look like this); "
        "every Conversions API token seen in production carries ~PRODUCTION~"
    ),
    TokenKind.JWT_OTHER: (
        "a JWT that is not Snap's long-lived Canvas S2S format: most likely a short-lived OAuth access "
        "token (they expire after 30 to 60 minutes)"
    ),
    TokenKind.OPAQUE: (
        "an opaque string, not Snap's long-lived Canvas S2S format: perhaps a short-lived OAuth access "
        "token, perhaps something else"
    ),
    TokenKind.MALFORMED: "not a JWT that decodes and not a plausible opaque token: cut, mangled or not a token",
}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One CAPI version: its paths and where it wants the token."""

    api: Api
    send_path: str
    validate_path: str
    placement: Placement
    placement_text: str
    deprecated: str | None = None


ENDPOINTS: Mapping[Api, Endpoint] = {
    Api.V3: Endpoint(
        api=Api.V3,
        send_path="/v3/{pixel}/events",
        validate_path="/v3/{pixel}/events/validate",
        placement=Placement.QUERY,
        placement_text="the access_token query parameter (a Bearer header beside it is harmless; "
        "a header alone has been seen to fail with 401)",
    ),
    Api.V2: Endpoint(
        api=Api.V2,
        send_path="/v2/conversion",
        validate_path="/v2/conversion/validate",
        placement=Placement.HEADER,
        placement_text="an Authorization: Bearer header",
        deprecated="Snap announced the deprecation of v2 for early 2025",
    ),
}


@dataclass(frozen=True, slots=True)
class FindingFacts:
    """Default severity, title and remediation steps of one finding code (templates)."""

    severity: Severity
    title: str
    remediation: tuple[str, ...]


# The placeholders the diagnosis always fills (with plain-words fallbacks when a value is unknown).
FIELDS = frozenset({
    "bm_path", "bm_generate", "configured_fp", "env_file", "key", "pixel", "pixel_key", "previous_pixel", "query_param",
    "restart", "send_fp", "source", "unit_status", "v3_url", "previous_endpoint", "endpoint", "max_rps",
    "max_batch", "max_age_days", "logs",
})

_REPLACE_TOKEN = "Put the token in {source} as one bare value (no quotes, no spaces, no 'Bearer '), then {restart}"
_NEW_TOKEN = (
    "Generate a Conversions API token in {bm_generate}, signed in as an Organization Admin of the organization "
    "that owns pixel {pixel} (the token is shown once: copy it straight into {source})"
)

FINDINGS: Mapping[FindingCode, FindingFacts] = {
    FindingCode.TOKEN_MISSING: FindingFacts(Severity.CRITICAL, "No access token anywhere", (
        "Set {key} in {env_file} to the Conversions API token, then {restart}",
        _NEW_TOKEN,
    )),
    FindingCode.TOKEN_MALFORMED: FindingFacts(Severity.CRITICAL, "The token is cut short or mangled", (
        "Copy the whole token again (about 330 characters for a Conversions API token): " + _NEW_TOKEN,
        _REPLACE_TOKEN,
    )),
    FindingCode.TOKEN_QUOTED: FindingFacts(Severity.CRITICAL, "The token reaches Snap with quotes around it", (
        "One pair of quotes around the value in {env_file} is fine (python-dotenv strips it); these quotes are "
        "inside the value and are sent as part of the token: write {key} as one bare value or with a single "
        "pair of quotes, then {restart}",
    )),
    FindingCode.TOKEN_WHITESPACE: FindingFacts(
        Severity.CRITICAL, "The token carries whitespace or a line break", (
            "Remove the spaces or line break around {key} in {env_file} (inside quotes they are kept), "
            "then {restart}",
        )),
    FindingCode.TOKEN_BEARER_PREFIX: FindingFacts(Severity.CRITICAL, "The token starts with 'Bearer '", (
        "Store the bare token in {key} in {env_file}, without 'Bearer ' (v3 sends it as the "
        "{query_param} query parameter), then {restart}",
    )),
    FindingCode.TOKEN_NOT_CANVAS: FindingFacts(
        Severity.WARNING, "The token is not a long-lived Conversions API token", (
            "If this is an OAuth access token, it expires within an hour: use a long-lived token instead. "
            + _NEW_TOKEN,
            _REPLACE_TOKEN,
        )),
    FindingCode.TOKEN_EXPIRED: FindingFacts(Severity.CRITICAL, "The token has expired", (
        "Replace it with a long-lived Conversions API token (no expiry). " + _NEW_TOKEN,
        "If the backend uses OAuth on purpose, refresh the access token before it expires "
        "(trust the expires_in the token endpoint returns)",
    )),
    FindingCode.TOKEN_NOT_YET_VALID: FindingFacts(Severity.CRITICAL, "The token is not valid yet", (
        "Check the clock of the machine that issued or inspects the token (timedatectl status)",
        "Wait until its nbf time, or use the token that was in service before",
    )),
    FindingCode.TOKEN_RECENTLY_ISSUED: FindingFacts(Severity.WARNING, "The token was issued just before the failures", (
        "Check in {bm_path} that this token was generated for the organization that owns pixel {pixel} "
        "and was not replaced since",
        "A delay before a new token works has been reported (anecdotal, undocumented by Snap): if the "
        "token is right, retry after an hour before generating another",
    )),
    FindingCode.TOKEN_STAGING: FindingFacts(Severity.CRITICAL, "A staging token is used against production", (
        "This is not a production Conversions API token (Camera Kit staging tokens look like this). "
        + _NEW_TOKEN,
        _REPLACE_TOKEN,
    )),
    FindingCode.TOKEN_DRIFT: FindingFacts(Severity.CRITICAL, "The backend still sends an old token", (
        "Restart the backend so it loads the token in {source}: {restart}",
        "Then check that requests carry token {configured_fp}: snapwatch diagnose",
    )),
    FindingCode.TOKEN_CHANGED: FindingFacts(Severity.CRITICAL, "The token changed when the failures began", (
        "Check that the new token {send_fp} was generated in {bm_path} by the organization that owns "
        "pixel {pixel}",
        "If the previous token is still listed there, put it back in {source} and {restart}; "
        "otherwise generate a new one",
    )),
    FindingCode.TOKEN_PREVIOUSLY_ACCEPTED: FindingFacts(
        Severity.INFO, "This token was accepted for pixel {pixel} before: not a token-type problem", (
            "Look at what changed since (the verdict), not at the token's type: its claims are the normal "
            "Conversions API format",
        )),
    FindingCode.TOKEN_REVOKED: FindingFacts(
        Severity.CRITICAL, "Snap stopped accepting this token for pixel {pixel}: revoked or regenerated", (
            "Check the token list under {bm_path}: a token regenerated or deleted there (or whose organization "
            "lost pixel {pixel}) is refused from then on",
            _NEW_TOKEN,
            "Put it in {key} in {env_file} as one bare value, then {restart}",
            "Confirm with snapwatch diagnose --probe (Snap's validate endpoint should accept it), then watch "
            "for 2xx: snapwatch status",
        )),
    FindingCode.TOKEN_UNLOGGED: FindingFacts(
        Severity.INFO, "The log does not show the token: what is known of it comes from {source}", (
            "v2 sends the token in an Authorization header the backend does not log; snapwatch diagnose --probe "
            "asks Snap about the configured token directly",
        )),
    FindingCode.TOKEN_REJECTED_FOR_PIXEL: FindingFacts(
        Severity.CRITICAL, "Snap does not accept this token for pixel {pixel}", (
            "This token has never been accepted for pixel {pixel}: it may be a Camera Kit token, another "
            "organization's token, or a deleted one",
            _NEW_TOKEN,
            _REPLACE_TOKEN,
        )),
    FindingCode.AUTH_PLACEMENT: FindingFacts(
        Severity.CRITICAL, "The token is not where the {endpoint} API wants it", (
            "On v3 send the token as the {query_param} query parameter ({v3_url}); on v2 as an "
            "Authorization: Bearer header",
            "A Bearer header may stay beside it, but not instead of it; then {restart}",
        )),
    FindingCode.ENDPOINT_CHANGED: FindingFacts(
        Severity.WARNING, "The endpoint changed from {previous_endpoint} to {endpoint}", (
            "v3 takes the token as the {query_param} query parameter, v2 as a Bearer header: check the "
            "new code sends it the v3 way ({v3_url})",
            "If in doubt, deploy the previous version and compare the logged URLs",
        )),
    FindingCode.PIXEL_CHANGED: FindingFacts(
        Severity.CRITICAL, "The pixel changed from {previous_pixel} to {pixel}", (
            "A token works only for pixels owned by the organization that generated it: check that pixel "
            "{pixel} belongs to the same organization as {previous_pixel}",
            "If {pixel} is right, " + _NEW_TOKEN[0].lower() + _NEW_TOKEN[1:],
            "If {pixel} is a mistake, fix {pixel_key} in {env_file} and {restart}",
        )),
    FindingCode.PIXEL_MALFORMED: FindingFacts(
        Severity.CRITICAL, "The pixel id is not a pixel id: the pixel and the token look swapped", (
            "In {env_file}, compare {pixel_key} and {key}: a pixel id is a UUID (8-4-4-4-12 hex digits); the "
            "requests carry a token-like value where the pixel id belongs. Swap the two values back",
            "{restart}, then check that the logged URLs read /v3/<pixel id>/events?{query_param}=…",
        )),
    FindingCode.V2_DEPRECATED: FindingFacts(Severity.WARNING, "Requests go to the deprecated v2 endpoint", (
        "Move to v3: POST {v3_url} (the token goes in the {query_param} query parameter)",
    )),
    FindingCode.PROBE_ACCEPTED: FindingFacts(
        Severity.INFO, "Snap's validate endpoint accepts this token for pixel {pixel} now", (
            "The token is good: look at how the backend sends it (logged URL, pixel, endpoint) "
            "and whether it runs with this token ({unit_status})",
        )),
    FindingCode.PROBE_REJECTED: FindingFacts(
        Severity.CRITICAL, "Snap's validate endpoint rejects this token for pixel {pixel}", (
            _NEW_TOKEN,
            _REPLACE_TOKEN,
        )),
    FindingCode.PROBE_FAILED: FindingFacts(Severity.INFO, "The live probe got no answer", (
        "The probe says nothing about the token; check this machine reaches tr.snapchat.com and retry "
        "with snapwatch diagnose --probe",
    )),
    FindingCode.RATE_LIMITED: FindingFacts(Severity.WARNING, "Snap is rate-limiting the requests", (
        "Snap recommends at most {max_rps} requests per second per integration: batch events "
        "(up to {max_batch} per request) and back off on 429 with retries",
        "Not a token problem: the token is fine",
    )),
    FindingCode.SERVER_ERRORS: FindingFacts(Severity.WARNING, "Snap answers with server errors: not your token", (
        "Nothing to change in the token or the backend's configuration: retry with backoff",
        "If it lasts, check Snap's status and report it to Snap support",
    )),
    FindingCode.INVALID_EVENTS: FindingFacts(Severity.WARNING, "Snap rejects events as invalid", (
        "Fix the payloads for the reasons counted above (required fields, PURCHASE price and currency, "
        "hashed user data, events at most {max_age_days} days old, at most {max_batch} per batch)",
        "Test a payload against the validate endpoint before sending it live",
    )),
    FindingCode.LOG_SILENT: FindingFacts(Severity.WARNING, "The backend stopped sending events", (
        "Check the backend is running and logging: {unit_status}",
        "Check the log path snapwatch follows is the one the backend writes ({logs})",
    )),
    FindingCode.LOG_GAP: FindingFacts(Severity.WARNING, "Part of the log was lost before it could be read", (
        "Counts for the lost stretch are missing; keep snapwatch running across log rotations "
        "(or keep more rotated files) so nothing vanishes unread",
    )),
    FindingCode.TOKEN_IN_LOG: FindingFacts(Severity.WARNING, "The backend writes the access token into its log", (
        "Mask the {query_param} query parameter before the backend logs request URLs",
        "Anyone who can read {logs} can use the token: consider generating a new one in {bm_path} "
        "and deleting the old one",
    )),
}


# How a finding reads when stronger evidence outranks it (an info note: "Token 3f9a… looks cut short or
# mangled, but Snap accepted it for pixel … until …").
LOOKS: Mapping[FindingCode, str] = {
    FindingCode.TOKEN_MALFORMED: "looks cut short or mangled",
    FindingCode.TOKEN_QUOTED: "carries quotes",
    FindingCode.TOKEN_WHITESPACE: "carries whitespace or a line break",
    FindingCode.TOKEN_BEARER_PREFIX: "starts with 'Bearer '",
    FindingCode.TOKEN_NOT_CANVAS: "is not in the Canvas S2S format",
    FindingCode.TOKEN_EXPIRED: "has an exp claim that passed",
    FindingCode.TOKEN_NOT_YET_VALID: "has an nbf claim after the failures",
    FindingCode.TOKEN_RECENTLY_ISSUED: "was issued shortly before the failures",
    FindingCode.TOKEN_STAGING: "looks like a staging token (~STAGING~ in sub)",
    FindingCode.TOKEN_REJECTED_FOR_PIXEL: "was never accepted for this pixel in the log",
    FindingCode.TOKEN_REVOKED: "stopped being accepted",
    FindingCode.AUTH_PLACEMENT: "is not where this API version wants it",
}
NOTE_REMEDIATION = "No action for this note: Snap's own answers rule it out as the cause"


def fill(template: str, values: Mapping[str, str]) -> str:
    """Fill a template. Raises KeyError for a placeholder that is not in ``values``."""
    return template.format_map(values)


def placeholders(template: str) -> set[str]:
    """The placeholder names a template uses."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def title(code: FindingCode, values: Mapping[str, str]) -> str:
    return fill(FINDINGS[code].title, values)


def remediation(code: FindingCode, values: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(fill(step, values) for step in FINDINGS[code].remediation)
