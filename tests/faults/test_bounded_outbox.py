"""Bounded resources: a long outbox queue to a dead target costs a page of memory; delivered rows are pruned."""

from __future__ import annotations

import asyncio
import dataclasses
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

from snapwatch.alert.messages import render
from snapwatch.alert.notify import AppriseTarget, Notifier
from snapwatch.store.outbox import Outbox
from snapwatch.store.schema import joined_transaction
from snapwatch.store.state import Store
from tests.helpers.alerts import make_alert
from tests.helpers.daemon import write_config
from tests.helpers.peers import free_port
from tests.helpers.process import READY, DaemonProcess, status_json
from tests.helpers.wait import wait_until

PENDING = 10_000


def _fill(outbox: Outbox, store: Store, n: int, at: datetime, targets: list[tuple[str, str]],
          prefix: str = "alert") -> None:
    message = render(make_alert())  # a full alert: verdict, evidence, remediation, in four renderings
    with joined_transaction(store.conn):
        for i in range(n):
            outbox.enqueue(dataclasses.replace(message, alert_id=f"{prefix}-{i}"), targets, at)


def test_a_round_with_10000_pending_to_a_dead_target_holds_a_page_not_the_queue(tmp_path: Path) -> None:
    target = AppriseTarget(f"json://127.0.0.1:{free_port()}/hook")  # nothing listens: every send fails at once
    now = datetime.now(UTC)
    with Store.open(tmp_path / "state") as store:
        outbox = Outbox(store.conn)
        _fill(outbox, store, PENDING, now, [(target.key, target.display)])
        notifier = Notifier(outbox, [target], timeout=5.0)
        try:
            tracemalloc.start()
            try:
                delivery = asyncio.run(notifier.deliver_due(now))
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        finally:
            notifier.close()
        assert delivery.retrying == 1 and delivery.delivered == 0  # the head failed; the queue waits behind it
        assert outbox.counts()["pending"] == PENDING
    assert peak < 8 << 20, f"one delivery round peaked at {peak / 2**20:.1f} MiB with {PENDING} rows pending"


def test_delivered_and_failed_rows_are_pruned_after_the_retention(tmp_path: Path) -> None:
    log = tmp_path / "capi.log"
    log.touch()
    state = tmp_path / "state"
    now = datetime.now(UTC)
    with Store.open(state) as store:
        outbox = Outbox(store.conn)
        console = [("console", "console")]
        _fill(outbox, store, 30, now - timedelta(days=20), console, "old")  # older than the retention
        _fill(outbox, store, 5, now - timedelta(days=2), console, "recent")
        store.conn.execute("UPDATE outbox SET state = 'delivered', delivered_at = created_at")
        store.conn.execute("UPDATE outbox SET state = 'failed' WHERE alert_id IN ('old-0', 'old-1')")
    assert status_json(write_config(tmp_path / "before.yaml", [log], state))["outbox"] == {
        "pending": 0, "delivered": 33, "failed": 2}
    config = write_config(tmp_path / "config.yaml", [log], state, "alerts:\n  retention: 7d\n")
    daemon = DaemonProcess(config)
    try:
        daemon.wait_for(READY, 30)
        wait_until(lambda: status_json(config)["outbox"] == {"pending": 0, "delivered": 5, "failed": 0},
                   "rows older than alerts.retention to be pruned")
        code, _ = daemon.terminate()
    finally:
        if daemon.proc.poll() is None:
            daemon.kill()
    assert code == 0, daemon.output()
