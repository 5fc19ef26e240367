"""What a response body says: the raw text read on demand into the few fields diagnosis needs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True, slots=True)
class BodyFields:
    """What a response body says, as far as diagnosis needs it.

    ``text`` is the raw text when the body is not JSON, or a JSON wrapper's ``"text"`` string.
    ``record_reasons`` are the reasons of v2 ``error_records``.
    """

    is_json: bool
    status: str | None = None
    reason: str | None = None
    codes: tuple[str, ...] = ()
    error_msgs: tuple[str, ...] = ()
    record_reasons: tuple[str, ...] = ()
    text: str | None = None


def _strings(value: object) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v) for v in value if v is not None)
    return () if value is None else (str(value),)


# Remembered: each diagnosis reads the same last 200 error bodies again, and Snap words them alike.
@lru_cache(maxsize=512)
def body_fields(body: str) -> BodyFields:
    """Read a raw response body (JSON when it is JSON, text otherwise). Pure (the result is frozen, so it
    is shared between calls with the same text); never raises."""
    stripped = body.strip()
    try:
        data = json.loads(stripped) if stripped[:1] in ("{", "[") else None
    except (ValueError, RecursionError):  # not JSON, or nested too deep to read: the text is what there is
        data = None
    if not isinstance(data, dict):
        if data is not None:
            return BodyFields(is_json=True)
        return BodyFields(is_json=False, text=stripped or None)
    errors = data.get("errors")
    errors = errors if isinstance(errors, dict) else {}
    records = data.get("error_records")
    reasons = tuple(
        str(r["reason"]) for r in records if isinstance(r, dict) and r.get("reason") is not None
    ) if isinstance(records, list) else ()
    text = data.get("text")
    return BodyFields(
        is_json=True,
        status=None if data.get("status") is None else str(data["status"]),
        reason=None if data.get("reason") is None else str(data["reason"]),
        codes=_strings(errors.get("codes")),
        error_msgs=_strings(errors.get("error_msgs")),
        record_reasons=reasons,
        text=text if isinstance(text, str) else None,
    )
