"""Reading Prometheus exposition text: samples keyed by name and labels."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples_of(text: str) -> Series:
    """Every sample of the exposition ``text``, keyed by (name, labels)."""
    samples: Series = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: Series, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def scrape(port: int) -> tuple[str, Series]:
    """The exposition text served on ``port`` and its samples."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return text, samples_of(text)
