"""Metrics: a 401 streak fed as the daemon would, scraped over HTTP from the real endpoint."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from snapwatch import __version__
from snapwatch.errors import ConfigError, SnapwatchError
from snapwatch.ingest.tokens import fingerprint
from snapwatch.model import Exchange, Request, Rule, TokenKind
from snapwatch.run.metrics import Metrics, MetricsServer, parse_listen, start_server
from tests.helpers.exchanges import exchange
from tests.helpers.metrics import samples_of, value
from tests.helpers.paths import ROOT
from tests.helpers.tokens import assert_no_secret, make_canvas_token

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
PIXEL = "3f1c2e4a-1111-2222-3333-444455556666"


def _exchange(at: datetime, status: int, token: str, source: str = "backend") -> Exchange:
    body = '{"status":"UNAUTHORIZED"}' if status == 401 else '{"status":"SUCCESS"}'
    return exchange(at, status, body, pixel=PIXEL, fp=fingerprint(token), source=source)


@pytest.fixture
def served() -> Iterator[tuple[Metrics, MetricsServer]]:
    metrics = Metrics()
    server = metrics.start_server("127.0.0.1:0")
    try:
        yield metrics, server
    finally:
        server.close()


def _scrape(server: MetricsServer) -> str:
    reply = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    return reply.text


def test_scrape_during_a_401_streak_matches_what_was_fed(served: tuple[Metrics, MetricsServer]) -> None:
    metrics, server = served
    token = make_canvas_token(seed="q")
    fp = fingerprint(token)
    at = T0
    # Three accepted calls, then a run of 401s, the streak gauge following each step as the detector would.
    for _ in range(3):
        metrics.observe(_exchange(at, 200, token))
        at += timedelta(seconds=1)
    for streak in range(1, 6):
        metrics.observe(_exchange(at, 401, token))
        metrics.set_streak("backend", Rule.AUTH_FAILURES, streak)
        if streak == 3:
            metrics.set_open_incidents([(Rule.AUTH_FAILURES, "token-expired")])
            metrics.count_alert("json://127.0.0.1:8080/…", "failed")
            metrics.count_alert("json://127.0.0.1:8080/…", "delivered")
            metrics.set_outbox({"json://127.0.0.1:8080/…": {"pending": 2, "delivered": 1, "failed": 0}})
        last = at
        at += timedelta(seconds=1)
    metrics.set_lag("backend", 4096)
    metrics.log_gap("backend", 1500)
    metrics.log_gap("backend", 0)
    # A record from before the newest one (out of order across a rotation) must not move the clock back.
    metrics.observe(_exchange(T0 - timedelta(hours=1), 200, token))

    text = _scrape(server)
    s = samples_of(text)
    assert value(s, "snapwatch_responses_total", source="backend", code="200") == 4
    assert value(s, "snapwatch_responses_total", source="backend", code="401") == 5
    assert value(s, "snapwatch_requests_total", source="backend", api="v3") == 9
    assert value(s, "snapwatch_streak", source="backend", rule="auth-failures") == 5
    assert value(s, "snapwatch_incidents_open", rule="auth-failures", verdict="token-expired") == 1
    assert value(s, "snapwatch_alerts_total", target="json://127.0.0.1:8080/…", outcome="delivered") == 1
    assert value(s, "snapwatch_alerts_total", target="json://127.0.0.1:8080/…", outcome="failed") == 1
    assert value(s, "snapwatch_outbox_pending", target="json://127.0.0.1:8080/…") == 2
    assert value(s, "snapwatch_lag_bytes", source="backend") == 4096
    assert value(s, "snapwatch_log_gaps_total", source="backend") == 2
    assert value(s, "snapwatch_log_gap_bytes_total", source="backend") == 1500
    assert value(s, "snapwatch_last_record_timestamp_seconds", source="backend") == last.timestamp()
    assert value(s, "snapwatch_token_last_seen_timestamp_seconds", fingerprint=fp, kind="canvas-s2s") == (
        last.timestamp()
    )
    assert value(s, "snapwatch_build_info", version=__version__) == 1
    assert_no_secret(text, token)

    # The streak breaks and the incident resolves: the series drop to 0 rather than vanish.
    metrics.observe(_exchange(at, 200, token))
    metrics.set_streak("backend", Rule.AUTH_FAILURES, 0)
    metrics.set_open_incidents([])
    metrics.set_outbox({})
    s = samples_of(_scrape(server))
    assert value(s, "snapwatch_streak", source="backend", rule="auth-failures") == 0
    assert value(s, "snapwatch_incidents_open", rule="auth-failures", verdict="token-expired") == 0
    assert value(s, "snapwatch_outbox_pending", target="json://127.0.0.1:8080/…") == 0
    assert value(s, "snapwatch_last_record_timestamp_seconds", source="backend") == at.timestamp()


def test_series_follow_prometheus_naming() -> None:
    metrics = Metrics()
    metrics.observe(_exchange(T0, 401, make_canvas_token()))
    metrics.log_gap("backend", 1)
    metrics.count_alert("console (stderr)", "expired")
    for family in metrics.registry.collect():
        assert family.name.startswith("snapwatch_"), family.name
        if family.type == "counter":
            assert any(s.name == family.name + "_total" for s in family.samples), family.name
        assert not family.name.endswith(("_ms", "_milliseconds", "_kb")), family.name


def test_two_registries_do_not_collide() -> None:
    a, b = Metrics(), Metrics()
    a.set_lag("x", 1)
    b.set_lag("x", 2)
    assert a.registry.get_sample_value("snapwatch_lag_bytes", {"source": "x"}) == 1
    assert b.registry.get_sample_value("snapwatch_lag_bytes", {"source": "x"}) == 2


def test_token_and_secret_never_become_label_values() -> None:
    metrics = Metrics()
    token = make_canvas_token(seed="z")
    with pytest.raises(ValueError, match="not a token fingerprint"):
        metrics.token_seen(token, TokenKind.CANVAS_S2S, T0)
    # A target name that smuggles a token is redacted before it becomes a label.
    metrics.count_alert(f"json://host/?access_token={token}", "failed")
    with pytest.raises(ValueError, match="unknown alert outcome"):
        metrics.count_alert("console (stderr)", "sent")
    # A request whose fingerprint field holds something else is counted but its token metric is skipped.
    bad = _exchange(T0, 401, token)
    assert bad.request is not None
    metrics.observe(Exchange(bad.response, Request(**{**_fields(bad.request), "token_fp": token}), "backend"))
    assert metrics.registry.get_sample_value("snapwatch_responses_total", {"source": "backend", "code": "401"}) == 1
    from prometheus_client import generate_latest

    assert_no_secret(generate_latest(metrics.registry), token)


def _fields(request: Request) -> dict[str, object]:
    return {name: getattr(request, name) for name in Request.__slots__}


@pytest.mark.parametrize(
    ("listen", "expected"),
    [("127.0.0.1:9464", ("127.0.0.1", 9464)), ("[::1]:0", ("::1", 0)), ("localhost:80", ("localhost", 80))],
)
def test_parse_listen(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["9464", "127.0.0.1:", ":9464", "127.0.0.1:99999", "bad host:1", "x:y"])
def test_parse_listen_rejects_with_one_line(listen: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_listen(listen)
    assert "metrics.listen" in str(err.value) and "\n" not in str(err.value)


def test_busy_port_is_a_clear_error_and_close_frees_the_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SnapwatchError, match=f"cannot listen on 127.0.0.1:{port}"):
            start_server(Metrics(), f"127.0.0.1:{port}")
    server = start_server(Metrics(), "127.0.0.1:0")
    port = server.port
    server.close()
    server.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_every_series_the_fleet_docs_name_exists() -> None:
    import re

    docs = (ROOT / "docs" / "fleet.md").read_text()
    named = set(re.findall(r"\bsnapwatch_[a-z_]+[a-z]", docs))
    metrics = Metrics()
    # Series with labels appear once a child exists; feed one of each.
    metrics.observe(_exchange(T0, 401, make_canvas_token()))
    metrics.set_streak("s", "r", 1)
    metrics.set_open_incidents([("r", "v")])
    metrics.count_alert("t", "failed")
    metrics.set_outbox({"t": {"pending": 1}})
    metrics.set_lag("s", 1)
    metrics.log_gap("s", 1)
    exposed = {s.name for family in metrics.registry.collect() for s in family.samples}
    assert named and named <= exposed, named - exposed
