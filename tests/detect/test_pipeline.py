"""The source pipeline's hand-outs: what an incident's opening and end looked like."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from snapwatch.config import RulesConfig, SourceConfig
from snapwatch.detect.pipeline import SourcePipeline
from snapwatch.ingest.tokens import fingerprint
from snapwatch.model import TransitionKind
from tests.helpers.clock import seconds
from tests.helpers.peers import Backend
from tests.helpers.tokens import make_canvas_token


def test_the_pipeline_says_how_each_incident_ended(tmp_path: Path) -> None:
    """``Batch.recovered``: the request whose answer resolved it, and the first 2xx of the recovering run."""
    old, new = make_canvas_token(seed="ended-old"), make_canvas_token(seed="ended-new")
    log = tmp_path / "capi.log"
    backend = Backend(log, name="snapwatch.tests.recovered")
    t0 = datetime(2025, 12, 3, 23, 0, tzinfo=UTC)
    try:
        backend.calls(old, [200] * 3 + [401] * 5, seconds(t0, 8))
        backend.calls(new, [200] * 4, seconds(t0, 4, first=20))
    finally:
        backend.close()
    pipeline = SourcePipeline(SourceConfig(path=str(log), timezone="UTC"), RulesConfig())
    batch = pipeline.feed(log.read_bytes())
    [incident_id] = [t.incident.id for t in batch.transitions if t.kind is TransitionKind.RESOLVED]
    recovery = batch.recovered[incident_id]
    assert recovery.since == t0 + timedelta(seconds=20)
    assert recovery.request is not None and recovery.request.token_fp == fingerprint(new)
