"""What makes a changed diagnosis owe an UPDATE alert: its verdict, the verdict's severity, a new probe answer."""

from __future__ import annotations

import json

from snapwatch.model import Diagnosis, FindingCode

_PROBES = {FindingCode.PROBE_ACCEPTED.value, FindingCode.PROBE_REJECTED.value, FindingCode.PROBE_FAILED.value}


def material_key(d: Diagnosis | None) -> str:
    """What an alert said that matters, as stored with it (``alert_state.sent_key``)."""
    if d is None:
        return json.dumps(["unknown", [], "info"])
    severity = d.cause.severity.value if d.cause is not None else "info"
    return json.dumps([d.verdict, sorted({f.code.value for f in d.findings} & _PROBES), severity])


def material(d: Diagnosis, sent_key: str | None) -> bool:
    """True when ``d`` has another verdict or verdict severity, or a probe finding, that the diagnosis handed
    out had not (keys stored before severity was part of them compare on the rest)."""
    if sent_key is None:
        return False
    verdict, probes, *severity = json.loads(sent_key)
    new_verdict, new_probes, new_severity = json.loads(material_key(d))
    return bool(new_verdict != verdict or set(new_probes) - set(probes) or (severity and severity[0] != new_severity))


def announced(sent_key: str | None) -> tuple[str, str] | None:
    """The (verdict, severity) an alert was last handed out with; None when nothing went out yet."""
    if sent_key is None:
        return None
    verdict, _, *severity = json.loads(sent_key)
    return str(verdict), str(severity[0]) if severity else ""
