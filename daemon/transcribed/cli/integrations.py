"""Wiring of the media-server integrations (issue 14): the receiver, given the pipeline's callables.

`start(config, ctx, pool)` builds the Requests service (pipeline/requests.py) over the pool's context and
the spool folder beside the ledger, and the webhook intake (a confined file handed to the pool like an inbox
file), then starts the IntegrationsServer. Counters kept in the ledger's meta feed `transcribed status`.
"""

from __future__ import annotations

import threading
from pathlib import Path

import structlog

from transcribed.config import Config
from transcribed.inbox import ReadyFile
from transcribed.inbox.filters import NameFilter
from transcribed.pipeline.context import Context
from transcribed.pipeline.pool import Pool
from transcribed.pipeline.requests import Requests
from transcribed.receiver.integrations import Handlers, IntegrationsServer

log = structlog.get_logger("transcribed.daemon")

WEBHOOK_COUNTER = "integrations_webhook_files"
SPOOL_NAME = "received"


def spool_of(config: Config) -> Path:
    """Where received audio waits for its job: beside the ledger (a local disk that survives restarts)."""
    return config.ledger.path.parent / SPOOL_NAME


def start(config: Config, ctx: Context, pool: Pool) -> IntegrationsServer:
    """Start serving integrations.listen; raise OSError when it cannot be bound."""
    spool = spool_of(config)
    requests = Requests(ctx, pool.enqueue, spool)
    names = NameFilter(config.inbox.include, config.inbox.exclude)
    counting = threading.Lock()

    def submit(path: Path, root: Path) -> str | None:
        reason = names.file_reason(path.name)
        if reason is not None:
            return reason
        try:
            status = path.stat()
        except OSError as exc:
            return f"cannot be read: {exc.strerror or exc.__class__.__name__}"
        pool.submit(ReadyFile(path, root, status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns))
        with counting:
            ctx.ledger.set_meta(WEBHOOK_COUNTER, str(int(ctx.ledger.get_meta(WEBHOOK_COUNTER) or 0) + 1))
        return None

    server = IntegrationsServer(config.integrations, config.inbox.paths, spool, Handlers(requests.answer, submit))
    server.start()
    host, port = server.address
    shown = f"[{host}]" if ":" in host else host
    log.info("integrations_listening", listen=f"{shown}:{port}",
             endpoint=f"http://{shown}:{port}/" + ("<token>/" if config.integrations.token else ""),
             library_paths=[str(p) for p in config.integrations.library_paths])
    return server
