"""The gauges (and ledger-backed counters) /metrics reads at every scrape, wired by the composition root.

Jobs created and audio seconds come from the ledger's spending rows, so they survive restarts; files by
state from the ledger's counts (held files shown as `waiting`, not in their underlying state); jobs in
flight, queue depth and pauses from the pool; what the budget leaves from the budget and the ledger.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import structlog

from transcribed.config import MetricsConfig
from transcribed.ledger import Ledger
from transcribed.pipeline.budget import HOLD_KIND, Budget
from transcribed.pipeline.pool import Pool
from transcribed.receiver.metrics import Metrics, MetricsServer, Sample

log = structlog.get_logger("transcribed.metrics")


def serve_metrics(stack: contextlib.ExitStack, config: MetricsConfig, metrics: Metrics, ledger: Ledger, pool: Pool,
                  budget: Budget) -> None:
    """Register every source, then serve GET /metrics on `config.listen` until `stack` closes.
    Raise OSError when the address cannot be bound."""
    register_gauges(metrics, ledger, pool, budget)
    host, port = config.address()
    server = MetricsServer(metrics, host, port)
    server.start()
    stack.callback(server.stop)
    bound_host, bound_port = server.address
    log.info("metrics_listening", listen=f"{bound_host}:{bound_port}", path="/metrics")


def register_gauges(metrics: Metrics, ledger: Ledger, pool: Pool, budget: Budget) -> None:
    """Register the collectors of everything the daemon's state says."""

    def ledger_samples() -> Iterator[Sample]:
        counts = ledger.counts()
        held = ledger.held_states(HOLD_KIND)
        for state, count in counts.items():
            yield Sample("transcribed_files", count - held.get(state, 0), {"state": state})
        yield Sample("transcribed_files", sum(held.values()), {"state": "waiting"})
        report = budget.report(ledger.usage)
        yield Sample("transcribed_jobs_created_total", report["jobs_created"])
        yield Sample("transcribed_audio_seconds_total", report["spent_seconds"])
        for period, used, left in (("day", "today_seconds", "today_left_seconds"),
                                   ("month", "month_seconds", "month_left_seconds")):
            yield Sample("transcribed_budget_used_seconds", report[used], {"period": period})
            value = report[left]
            yield Sample("transcribed_budget_left_seconds", float("inf") if value is None else value,
                         {"period": period})

    def pool_samples() -> Iterator[Sample]:
        snap = pool.snapshot()
        yield Sample("transcribed_jobs_in_flight", snap.in_flight)
        yield Sample("transcribed_queue_depth", snap.queued)
        for reason, paused in (("key_refused", snap.paused is not None), ("outage", snap.api_down),
                               ("budget", snap.waiting > 0)):
            yield Sample("transcribed_paused", 1 if paused else 0, {"reason": reason})

    metrics.register(ledger_samples)
    metrics.register(pool_samples)
