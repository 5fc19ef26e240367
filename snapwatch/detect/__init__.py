"""Exchanges to incident transitions and per-token memory, pure."""
