"""The daemon's parts, built and started by the composition root: the Gladia client, the jobs' context, and
the servers beside the pool (the callback receiver, /metrics, the media-server integrations).

The machinery is imported inside the functions, once there is work: `once` over a finished inbox never
needs it.
"""

from __future__ import annotations

import contextlib
import random
import sys
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

import structlog

from transcribed.config import CallbackConfig, Config
from transcribed.ledger import Ledger

if TYPE_CHECKING:
    from transcribed.gladia.client import GladiaClient
    from transcribed.gladia.retry import CircuitBreaker, RouteGate
    from transcribed.pipeline.budget import Budget
    from transcribed.pipeline.context import Context
    from transcribed.pipeline.pool import Pool
    from transcribed.receiver import CallbackHub
    from transcribed.receiver.integrations import IntegrationsServer
    from transcribed.receiver.metrics import Metrics

log = structlog.get_logger("transcribed.daemon")


def gladia_client(loaded: Config, stop: threading.Event, metrics: Metrics | None,
                  breaker: CircuitBreaker | None = None, gate: RouteGate | None = None) -> GladiaClient:
    """A client for [gladia] (its key must be set), stopped by `stop`, counting into `metrics`."""
    from transcribed.gladia.client import GladiaClient
    from transcribed.gladia.retry import RetryPolicy

    gladia = loaded.gladia
    assert gladia.api_key is not None
    return GladiaClient(gladia.base_url, gladia.api_key.reveal(), request_timeout=gladia.request_timeout_seconds,
                        upload_timeout=gladia.upload_timeout_seconds, stop=stop, breaker=breaker, gate=gate,
                        policy=RetryPolicy(max_attempts=gladia.max_attempts,
                                           deadline=gladia.retry_deadline_seconds),
                        observer=metrics.observe_api if metrics is not None else None)


def job_context(loaded: Config, ledger: Ledger, *, stop: threading.Event, environ: Mapping[str, str],
                crash_at: str | None, hub: CallbackHub | None, secret: bytes, metrics: Metrics | None,
                budget: Budget) -> Context:
    """What every job is given: a client with its outage breaker, the media tools found, per-folder settings."""
    from transcribed.gladia.retry import CircuitBreaker
    from transcribed.inbox.folders import FolderSettings
    from transcribed.pipeline.context import Context
    from transcribed.pipeline.prepare import MediaTools

    breaker = CircuitBreaker(probe_interval=loaded.gladia.outage_probe_seconds)
    return Context(client=gladia_client(loaded, stop, metrics, breaker), ledger=ledger, config=loaded, stop=stop,
                   clock=time.time, crash_at=crash_at, rng=random.Random(), hook_env=hook_environment(environ),
                   hub=hub, callback_secret=secret, started_at=time.time(), media=MediaTools.find(loaded.media),
                   budget=budget, metrics=metrics, folders=FolderSettings(loaded))


def hook_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment hooks and helpers run with: ours, minus the key and systemd's notify plumbing."""
    private = ("GLADIA_API_KEY", "CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
               "TRANSCRIBED_CRASH_AT", "TRANSCRIBED_TEST_HANG_MAIN_LOOP_AFTER")
    return {name: value for name, value in environ.items() if name not in private}


def start_callbacks(stack: contextlib.ExitStack, settings: CallbackConfig, ledger: Ledger,
                    secret: bytes) -> CallbackHub | None:
    """Start the callback receiver when [callback] is enabled, until `stack` closes; return its hub (None:
    polling only).

    Jobs still in flight from an earlier run are expected before the receiver opens, so their callbacks
    (whose tokens derive from the ledger's secret and the attempt id) are accepted at once."""
    if not settings.enabled:
        return None
    from transcribed.pipeline.context import callback_token
    from transcribed.receiver import CallbackHub, CallbackServer

    hub = CallbackHub(settings)
    for entry in ledger.in_flight():
        if entry.job_id and entry.attempt_id:
            hub.expect(entry.job_id, hub.issue(callback_token(secret, entry.attempt_id)))
    server = CallbackServer(hub, settings)
    server.start()
    stack.callback(server.stop)
    stack.callback(hub.close)
    host, port = server.address
    log.info("callback_listening", listen=f"{host}:{port}", callback_url=settings.public_url.rstrip("/")
             + "/callback/...", webhook_url=hub.webhook_url)
    return hub


def start_metrics(stack: contextlib.ExitStack, loaded: Config, metrics: Metrics, ledger: Ledger, pool: Pool,
                  budget: Budget) -> bool:
    """Serve /metrics on metrics.listen until `stack` closes; False after saying on stderr why it cannot."""
    from transcribed.cli.gauges import serve_metrics

    try:
        serve_metrics(stack, loaded.metrics, metrics, ledger, pool, budget)
    except OSError as exc:
        print(f"transcribed: cannot serve metrics on {loaded.metrics.listen} (metrics.listen): "
              f"{exc.strerror or exc}", file=sys.stderr)
        return False
    return True


def start_integrations(loaded: Config, ctx: Context, pool: Pool) -> IntegrationsServer | None:
    """Serve the media-server integrations on integrations.listen; None after saying on stderr why it cannot."""
    from transcribed.cli import integrations

    try:
        return integrations.start(loaded, ctx, pool)
    except OSError as exc:
        print(f"transcribed: cannot listen on integrations.listen = {loaded.integrations.listen!r}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return None
