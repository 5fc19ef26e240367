"""A diagnosis as text, the one way every output says it: alerts, ``scan`` and ``diagnose``. Pure."""

from __future__ import annotations

from snapwatch.model import Diagnosis, Finding, Severity

TOP_FINDINGS = 3  # findings shown with their evidence; the rest are listed by code only
UNKNOWN = "unknown: no finding explains this incident"

# A section: a heading, its lines, and whether the lines are numbered steps.
Section = tuple[str, tuple[str, ...], bool]


def finding_line(f: Finding) -> str:
    """``code: title (severity, confidence)``: a finding on one line."""
    return f"{f.code.value}: {f.title} ({f.severity.value}, {f.confidence.value} confidence)"


def verdict_line(diag: Diagnosis, *, full: bool = False) -> str:
    """The verdict on one line: its finding, or "unknown" when no finding names a cause."""
    if diag.cause is not None:
        return finding_line(diag.cause)
    return UNKNOWN + ("; what was checked is below" if full else "")


def diagnosis_sections(diag: Diagnosis, *, full: bool = True, top: int = TOP_FINDINGS) -> list[Section]:
    """The verdict; with ``full``, its evidence, the remediation steps of the ``top`` causes in order
    (each step once), the other possible causes, the notes (what outranks them, evidence), and what was
    ruled out (for an unknown verdict: what was checked). A resolved incident's recovery always comes
    last: what changed when it ended."""
    out: list[Section] = [("Verdict", (verdict_line(diag, full=full),), False)]
    recovery: list[Section] = [("What changed at recovery", diag.recovery, False)] if diag.recovery else []
    if not full:
        return out + recovery
    causes = [f for f in diag.findings if f.severity is not Severity.INFO]
    notes = [f for f in diag.findings if f.severity is Severity.INFO]
    shown = causes[:top]
    if shown and shown[0].evidence:
        out.append(("Evidence", shown[0].evidence, False))
    steps: list[str] = []
    for finding in shown:
        steps.extend(s for s in finding.remediation if s not in steps)
    if steps:
        out.append(("Remediation, in order", tuple(steps), True))
    others: list[str] = []
    for finding in shown[1:]:
        others.append(finding_line(finding))
        others.extend(f"  evidence: {e}" for e in finding.evidence)
    others.extend(finding_line(f) for f in causes[top:])
    if others:
        out.append(("Other possible causes", tuple(others), False))
    if notes:
        lines: list[str] = []
        for i, note in enumerate(notes):
            lines.append(finding_line(note))
            if i < top or not causes:
                lines.extend(f"  evidence: {e}" for e in note.evidence)
        out.append(("Notes", tuple(lines), False))
    if diag.ruled_out:
        out.append(("Ruled out" if causes else "Checked", diag.ruled_out, False))
    elif not causes:
        out.append(("Checked", ("the token's shape and claims, drift from the token source, placement, and "
                                "changes in the requests: nothing found",), False))
    return out + recovery


def sections_text(sections: list[Section] | tuple[Section, ...], indent: str = "") -> list[str]:
    """Sections as plain-text lines: ``Heading:``, then each line indented, steps numbered."""
    out: list[str] = []
    for heading, lines, numbered in sections:
        out.append(f"{indent}{heading}:")
        out += [f"{indent}  {i}. {line}" if numbered else f"{indent}  {line}" for i, line in enumerate(lines, 1)]
    return out
