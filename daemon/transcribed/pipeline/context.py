"""What one content's job is given (Context, passed in by the pool) and how it can end (Outcome).

The steps of a job (pipeline/job.py drives them: upload, create, wait, finish) all take a Context; none of
them holds a client, ledger or clock of its own.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import os
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from transcribed.config import Config
from transcribed.gladia.client import GladiaClient
from transcribed.inbox.folders import Effective, FolderSettings
from transcribed.ledger import Entry, Ledger
from transcribed.outputs.claim import FolderLocks
from transcribed.pipeline.budget import Budget
from transcribed.pipeline.lister import JobLister
from transcribed.pipeline.prepare import MediaTools
from transcribed.receiver import CallbackHub
from transcribed.receiver.metrics import Metrics

# Test-only crash points (R1): cli passes TRANSCRIBED_CRASH_AT; the process dies inside that step.
CRASH_POINTS = ("after_upload", "after_intent", "after_create", "after_result", "after_outputs")


class Outcome(enum.Enum):
    DONE = "done"
    FAILED = "failed"            # permanent: waits for `transcribed retry`
    RETRY_LATER = "retry_later"  # transient: the ledger holds when
    SKIPPED = "skipped"
    STOPPED = "stopped"          # shutdown: resumable from the ledger
    PAUSED = "paused"            # the API key was refused: nothing more until it is fixed
    WAITING = "waiting"          # over the audio budget: held until the next period starts
    HELD = "held"                # its folder settings are invalid: nothing recorded; the pool rechecks them


@dataclass
class Context:
    """What a job needs, passed in by the pool (no globals)."""

    client: GladiaClient
    ledger: Ledger
    config: Config
    stop: threading.Event
    clock: Callable[[], float]                    # wall clock (seconds since the epoch)
    crash_at: str | None = None
    rng: random.Random = field(default_factory=random.Random)
    media: MediaTools | None = None               # ffmpeg/ffprobe preparation (None: upload files as they are)
    hook_env: Mapping[str, str] | None = None    # the environment hooks run with (no API key in it)
    hub: CallbackHub | None = None               # results by callback: the receiver's hub
    lister: JobLister | None = None              # else: one shared job-list poll wakes finished jobs
    callback_secret: bytes = b""                 # derives each job's callback token from its attempt id
    started_at: float = 0.0                      # when this run began (wall clock)
    budget: Budget | None = None                 # the audio budget (None: nothing counted, e.g. unit tests)
    metrics: Metrics | None = None               # counters for /metrics
    folders: FolderSettings | None = None        # per-folder settings (None: the main config for every file)
    output_locks: FolderLocks = field(default_factory=FolderLocks)   # one claim at a time per output folder

    def callback_token(self, attempt_id: str) -> str:
        return callback_token(self.callback_secret, attempt_id)

    def crash(self, point: str) -> None:
        if self.crash_at == point:
            os._exit(97)


def callback_token(secret: bytes, attempt_id: str) -> str:
    """The unguessable token in an attempt's callback URL, derived from the ledger's secret: the same after a
    restart, so callbacks for jobs created before it are still recognised."""
    digest = hmac.new(secret, attempt_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def settings_for(ctx: Context, source: Path) -> Effective:
    """The effective settings of a file: the main config with its folders' .transcribed.toml laid over it."""
    if ctx.folders is None:
        return Effective(ctx.config, {})
    return ctx.folders.for_path(source)


def source_of(entry: Entry) -> Path | None:
    """The first of the entry's paths that is still a file, or None when every one is gone."""
    for text in entry.paths:
        path = Path(text)
        if path.is_file():
            return path
    return None
