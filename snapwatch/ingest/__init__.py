"""Bytes to exchanges, pure: line splitting, cleaning, the log formats, pairing, token identity."""
