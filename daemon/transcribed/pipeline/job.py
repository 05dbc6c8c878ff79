"""One content's state machine: upload -> create -> wait -> outputs, each step recorded before the next.

The next step is read from what the ledger holds (job id, attempt id, audio URL), so a crash at any point
resumes from the last recorded step, and POST /v2/pre-recorded is never sent twice for one attempt
(RELIABILITY.md). Errors are decided by type: transient -> retry later on a schedule kept in the ledger;
permanent -> failed with Gladia's message; 401 -> pause everything.

The steps live beside this flow: `upload` (source, extracted audio, split parts, link files), `create`,
`wait` (then publish), `finish` (done, failed, retry later, skipped); `context` holds what they are given.
"""

from __future__ import annotations

import dataclasses

import structlog

from transcribed import media
from transcribed.errors import (
    ApiUnavailableError,
    AuthenticationError,
    MediaError,
    NotMediaError,
    PermanentApiError,
    TransientApiError,
)
from transcribed.gladia.client import Stopped
from transcribed.inbox.links import is_link_key
from transcribed.ledger import Entry
from transcribed.pipeline.budget import HOLD_KIND, BudgetWait
from transcribed.pipeline.context import Context, Outcome, settings_for, source_of
from transcribed.pipeline.create import create
from transcribed.pipeline.finish import fail, retry_later
from transcribed.pipeline.prepare import is_part
from transcribed.pipeline.upload import PartTask, take_link, upload, upload_part
from transcribed.pipeline.wait import wait_and_publish

log = structlog.get_logger("transcribed.job")


def run(ctx: Context, key: str) -> Outcome:
    """Carry one content from wherever the ledger says it is to done, failed, skipped or a resumable stop.

    The job runs with the effective settings of its file's folder; while they are invalid nothing is done or
    recorded (HELD: the pool looks at them again and queues the content once they are fixed)."""
    entry = ctx.ledger.get(key)
    if entry is None or is_part(key):
        return Outcome.SKIPPED     # parts are carried by their source's worker
    structlog.contextvars.bind_contextvars(key=key[:19], file=entry.paths[0] if entry.paths else None)
    try:
        source = source_of(entry)
        if source is not None and entry.state not in ("done", "skipped"):
            effective = settings_for(ctx, source)
            if not effective.valid:
                return Outcome.HELD
            ctx = dataclasses.replace(ctx, config=effective.config)
        return _advance(ctx, entry)
    except BudgetWait as exc:
        ctx.ledger.hold(key, HOLD_KIND, str(exc))
        log.info("budget_wait", reason=str(exc))
        return Outcome.WAITING
    except (Stopped, media.Stopped):
        current = ctx.ledger.get(key)
        log.info("job_interrupted", state=current.state if current else None)
        return Outcome.STOPPED
    except AuthenticationError as exc:
        ctx.ledger.set_meta("last_api_error", exc.describe())
        return Outcome.PAUSED
    except ApiUnavailableError as exc:
        delay = ctx.client.breaker.next_probe_in() + ctx.rng.uniform(1.0, 5.0)
        return retry_later(ctx, key, exc.describe(), delay, count=False)
    except TransientApiError as exc:
        ctx.ledger.set_meta("last_api_error", exc.describe())
        return retry_later(ctx, key, exc.describe())
    except PermanentApiError as exc:
        ctx.ledger.set_meta("last_api_error", exc.describe())
        return fail(ctx, key, f"Gladia refused it: {exc.describe()}")
    except NotMediaError as exc:       # x.ts that is TypeScript: set aside quietly, nothing was sent
        ctx.ledger.mark_skipped(key, str(exc))
        log.info("file_set_aside", reason=str(exc))
        return Outcome.SKIPPED
    except MediaError as exc:
        if str(exc).startswith("needs ffmpeg"):
            ctx.ledger.mark_skipped(key, str(exc))
            log.warning("file_set_aside", reason=str(exc))
            return Outcome.SKIPPED
        return fail(ctx, key, str(exc))
    except OSError as exc:
        # Disk full, read-only output folder, vanished file...: nothing half-written is visible; try later.
        return retry_later(ctx, key, f"{exc.__class__.__name__}: {exc.strerror or exc}")
    finally:
        structlog.contextvars.unbind_contextvars("key", "file")


def _advance(ctx: Context, entry: Entry, task: PartTask | None = None) -> Outcome:
    key = entry.key
    fresh_upload = False
    while True:
        if ctx.stop.is_set():
            raise Stopped("stopping")
        entry = ctx.ledger.get(key) or entry
        if entry.state in ("done", "skipped"):
            return Outcome.DONE if entry.state == "done" else Outcome.SKIPPED
        if entry.job_id:
            outcome = wait_and_publish(ctx, entry, publish=task is None)
            if outcome is not None:
                return outcome
            continue   # the job ended in a retryable error: a new job from the same upload
        if entry.audio_url:
            try:
                create(ctx, entry)
            except PermanentApiError as exc:
                if fresh_upload or isinstance(exc, AuthenticationError):
                    raise
                # An upload from an earlier run may have expired: upload again once, then create.
                log.warning("audio_url_refused", error=exc.describe())
                ctx.ledger.clear_job(key, keep_upload=False)
            continue
        if task is not None:
            upload_part(ctx, key, task)
            fresh_upload = True
            continue
        if is_link_key(key):
            outcome = take_link(ctx, entry)
            if outcome is not None:
                return outcome
            fresh_upload = True
            continue
        source = source_of(entry)
        if source is None:
            ctx.ledger.mark_skipped(key, "the file is gone from the inbox")
            log.info("file_gone")
            return Outcome.SKIPPED
        outcome = upload(ctx, entry, source, _advance)
        if outcome is not None:
            return outcome
        fresh_upload = True
