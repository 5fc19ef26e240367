"""Evidence to ranked findings, pure: the Snap facts table, the rules, the ranking, the text."""

from snapwatch import lazy_exports

__all__ = [
    "BUSINESS_MANAGER_PATH",
    "Evidence",
    "Section",
    "diagnose",
    "diagnosis_sections",
    "invalid_reasons",
    "sections_text",
]

__getattr__ = lazy_exports(__name__, {
    "BUSINESS_MANAGER_PATH": "facts",
    "Evidence": "case",
    "Section": "text",
    "diagnose": "rank",
    "diagnosis_sections": "text",
    "invalid_reasons": "traffic",
    "sections_text": "text",
})
