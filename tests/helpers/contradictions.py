"""What counts as a contradiction within one diagnosis or one message, checked the same way everywhere.

A message contradicts itself when one of its lines says what another excludes. The rules, each naming
what it finds (``contradictions`` returns one line per breach, empty when the message is consistent):

R1 ruled out, yet a cause: a "Ruled out" line's topic excludes a finding listed as a cause (critical or
   warning) about the same token: ``token drift`` → token-drift, ``token change`` → token-changed, ``pixel
   change`` → pixel-changed, ``endpoint change`` → endpoint-changed, ``auth placement`` → auth-placement,
   ``expiry`` → token-expired, ``token type`` → token-not-canvas, token-staging, token-rejected-for-pixel,
   ``Canvas-vs-CAPI mismatch`` → token-rejected-for-pixel, ``the token itself`` → every cause about the token.
R2 accepted, yet its shape blamed: a cause about a token's shape that does not change with time
   (token-malformed, token-not-canvas, token-staging) while a line says Snap accepted that very token
   ("carried the same token X", "token X got N 2xx").
R3 accepted and never accepted: token-rejected-for-pixel as a cause beside token-previously-accepted or
   token-revoked (both say Snap accepted it).
R4 nothing changed and something changed: token-revoked as a cause beside token-changed, pixel-changed
   or endpoint-changed as causes.
R5 a live "accepted" against a cause about the token: probe-accepted beside token-revoked,
   token-rejected-for-pixel or a shape cause as a cause.
R6 two fixes that exclude each other: token-drift (the source already holds another token: restart) beside
   token-revoked (generate a new one) as causes.
R7 the verdict is a note: the verdict names a finding that is info (a note is never the verdict).
R8 an unknown verdict that says nothing: no note, nothing checked or ruled out, no recovery.
R9 revoked, yet accepted again: token-revoked as a cause while the recovery says the very same requests
   are accepted again with nothing changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from snapwatch.model import Diagnosis

FP = re.compile(r"\b[0-9a-f]{12}\b")
SHAPE = {"token-malformed", "token-not-canvas", "token-staging"}
TOKEN_CAUSES = SHAPE | {"token-expired", "token-not-yet-valid", "token-recently-issued", "token-quoted",
                        "token-whitespace", "token-bearer-prefix", "token-revoked", "token-rejected-for-pixel"}
TOPICS: dict[str, set[str]] = {
    "token drift": {"token-drift"},
    "token change": {"token-changed"},
    "pixel change": {"pixel-changed"},
    "endpoint change": {"endpoint-changed"},
    "auth placement": {"auth-placement"},
    "expiry": {"token-expired"},
    "token type": {"token-not-canvas", "token-staging", "token-rejected-for-pixel"},
    "Canvas-vs-CAPI mismatch": {"token-rejected-for-pixel"},
    "the token itself": TOKEN_CAUSES,
}
HEADINGS = {"What happened", "Verdict", "Evidence", "Remediation, in order", "Other possible causes", "Notes",
            "Ruled out", "Checked", "What changed at recovery", "Token", "Alert"}
_FINDING = re.compile(r"^\s*([a-z0-9-]+): (.*) \((critical|warning|info), (high|medium|low) confidence\)$")


@dataclass
class Said:
    """What one diagnosis or message says: its verdict, its findings (code, severity, title and evidence),
    its ruled-out or checked lines, its recovery lines."""

    verdict: str
    findings: list[tuple[str, str, list[str]]] = field(default_factory=list)
    ruled_out: list[str] = field(default_factory=list)
    recovery: list[str] = field(default_factory=list)

    def causes(self) -> dict[str, list[str]]:
        return {code: texts for code, severity, texts in self.findings if severity != "info"}

    def codes(self) -> set[str]:
        return {code for code, _, _ in self.findings}


def said_by(d: Diagnosis) -> Said:
    return Said(d.verdict, [(f.code.value, f.severity.value, [f.title, *f.evidence]) for f in d.findings],
                list(d.ruled_out), list(d.recovery))


def said_in(text: str) -> Said:
    """Read a rendered message (plain text, or markdown) back into what it says."""
    said = Said("unknown")
    section, current = "", None
    for raw in text.splitlines():
        line = raw.strip().removeprefix("- ").strip()
        heading = line.strip("*").rstrip(":")
        if heading in HEADINGS and not raw.startswith(" "):  # plain text, markdown, or as a target rendered it
            section, current = heading, None
            continue
        if not line:
            continue
        found = _FINDING.match(line)
        if section in ("Verdict", "Other possible causes", "Notes") and found:
            current = [found.group(2)]
            said.findings.append((found.group(1), found.group(3), current))
            if section == "Verdict":
                said.verdict = found.group(1)
        elif section == "Evidence" and said.findings:
            said.findings[0][2].append(line)
        elif line.startswith("evidence: ") and current is not None:
            current.append(line.removeprefix("evidence: "))
        elif section in ("Ruled out", "Checked"):
            said.ruled_out.append(line)
        elif section == "What changed at recovery":
            said.recovery.append(line)
    return said


def contradictions(what: Diagnosis | str) -> list[str]:
    """Every breach of the rules above in ``what`` (a Diagnosis, or a rendered message's text)."""
    s = said_by(what) if isinstance(what, Diagnosis) else said_in(what)
    causes, out = s.causes(), []
    for line in s.ruled_out:
        topic = line.split(":", 1)[0]
        named = set(FP.findall(line))
        for code in TOPICS.get(topic, set()) & causes.keys():
            about = set(FP.findall(" ".join(causes[code])))
            if not named or not about or named & about:
                out.append(f"R1: {code} is a cause, and ruled out: {line}")
    for code in SHAPE & causes.keys():
        for fp in set(FP.findall(" ".join(causes[code]))):
            accepted = [t for t in (*s.ruled_out, *(e for _, _, texts in s.findings for e in texts))
                        if f"the same token {fp}" in t or (f"token {fp} got" in t and " 2xx" in t)]
            if accepted:
                out.append(f"R2: {code} blames token {fp}, which Snap accepted: {accepted[0]}")
    if "token-rejected-for-pixel" in causes and {"token-previously-accepted", "token-revoked"} & s.codes():
        out.append("R3: token-rejected-for-pixel beside a finding that says Snap accepted the token")
    if "token-revoked" in causes:
        for code in {"token-changed", "pixel-changed", "endpoint-changed"} & causes.keys():
            out.append(f"R4: token-revoked (nothing changed) beside {code}")
    if "probe-accepted" in s.codes():
        for code in (SHAPE | {"token-revoked", "token-rejected-for-pixel"}) & causes.keys():
            out.append(f"R5: {code} is a cause though Snap's validate endpoint accepted the token")
    if {"token-drift", "token-revoked"} <= causes.keys():
        out.append("R6: token-drift and token-revoked are both causes")
    if s.verdict != "unknown" and s.verdict not in causes:
        out.append(f"R7: the verdict {s.verdict} is a note")
    if s.verdict == "unknown" and not s.findings and not s.ruled_out and not s.recovery:
        out.append("R8: an unknown verdict with nothing checked")
    if "token-revoked" in causes and any("accepted again" in line and "nothing changed" in line for line in s.recovery):
        out.append("R9: token-revoked, yet the very same requests are accepted again")
    return out
