"""Bytes to exchanges, pure: line splitting, cleaning, the log formats, pairing, token identity."""

from snapwatch import lazy_exports

__all__ = [
    "DEFECT_FINDINGS",
    "Assembler",
    "ConfiguredToken",
    "CutCounts",
    "Defect",
    "LineSplitter",
    "Pairing",
    "Secret",
    "Stamps",
    "TokenReport",
    "body_fields",
    "fingerprint",
    "inspect",
    "zone_of",
]

__getattr__ = lazy_exports(__name__, {
    "Assembler": "records",
    "ConfiguredToken": "tokens",
    "CutCounts": "lines",
    "DEFECT_FINDINGS": "tokens",
    "Defect": "tokens",
    "LineSplitter": "lines",
    "Pairing": "pairing",
    "Secret": "tokens",
    "Stamps": "stamps",
    "TokenReport": "tokens",
    "body_fields": "body",
    "fingerprint": "tokens",
    "inspect": "tokens",
    "zone_of": "stamps",
})
