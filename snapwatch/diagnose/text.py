"""A diagnosis as text, the one way every output says it: alerts, ``scan`` and ``diagnose``. Pure."""

from __future__ import annotations

from snapwatch.model import Diagnosis, Finding

TOP_FINDINGS = 3  # findings shown with their evidence; the rest are listed by code only

# A section: a heading, its lines, and whether the lines are numbered steps.
Section = tuple[str, tuple[str, ...], bool]


def finding_line(f: Finding) -> str:
    """``code: title (severity, confidence)``: a finding on one line."""
    return f"{f.code.value}: {f.title} ({f.severity.value}, {f.confidence.value} confidence)"


def diagnosis_sections(diag: Diagnosis, *, full: bool = True, top: int = TOP_FINDINGS) -> list[Section]:
    """The verdict; with ``full``, its evidence, the remediation steps of the ``top`` findings in order
    (each step once), the other possible causes, and what was ruled out."""
    shown = diag.findings[:top]
    if not shown:
        return [("Verdict", ("unknown: no finding explains this incident yet",), False)]
    verdict = shown[0]
    out: list[Section] = [("Verdict", (finding_line(verdict),), False)]
    if not full:
        return out
    if verdict.evidence:
        out.append(("Evidence", verdict.evidence, False))
    steps: list[str] = []
    for finding in shown:
        steps.extend(s for s in finding.remediation if s not in steps)
    if steps:
        out.append(("Remediation, in order", tuple(steps), True))
    others: list[str] = []
    for finding in shown[1:]:
        others.append(finding_line(finding))
        others.extend(f"  evidence: {e}" for e in finding.evidence)
    others.extend(finding_line(f) for f in diag.findings[top:])
    if others:
        out.append(("Other possible causes", tuple(others), False))
    if diag.ruled_out:
        out.append(("Ruled out", diag.ruled_out, False))
    return out


def sections_text(sections: list[Section] | tuple[Section, ...], indent: str = "") -> list[str]:
    """Sections as plain-text lines: ``Heading:``, then each line indented, steps numbered."""
    out: list[str] = []
    for heading, lines, numbered in sections:
        out.append(f"{indent}{heading}:")
        out += [f"{indent}  {i}. {line}" if numbered else f"{indent}  {line}" for i, line in enumerate(lines, 1)]
    return out
