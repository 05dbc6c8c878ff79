"""The wait step: a created job is waited for (by callback, the shared job list, or its own polls), its result
stored and counted against the budget, then its outputs published.

A job that ended in a retryable error, or that Gladia no longer knows, is cleared so the next step creates a
new one from the same upload (within workers.max_job_attempts).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime

import structlog

from transcribed.errors import AuthenticationError, JobFailedError, PermanentApiError, TransientApiError
from transcribed.gladia.client import CreatedJob
from transcribed.gladia.retry import poll_deadline
from transcribed.inbox.links import is_link_key
from transcribed.inbox.links import shown as shown_url
from transcribed.ledger import Entry
from transcribed.pipeline.budget import reported_duration
from transcribed.pipeline.context import Context, Outcome
from transcribed.pipeline.finish import fail, publish_stored

log = structlog.get_logger("transcribed.job")


def wait_and_publish(ctx: Context, entry: Entry, *, publish: bool = True) -> Outcome | None:
    """Wait for the job; write outputs (unless `publish` is False: a part, whose result waits for the others);
    return the outcome, or None when a new job should be created."""
    assert entry.job_id is not None
    gladia = ctx.config.gladia
    job = CreatedJob(entry.job_id, entry.result_url or "")
    notice = None
    cap = gladia.poll_max_seconds
    look_now = entry.updated_at < ctx.started_at   # created before this run: it may have ended meanwhile
    if ctx.hub is not None and entry.attempt_id:
        hub = ctx.hub
        hub.expect(entry.job_id, ctx.callback_token(entry.attempt_id))
        notice = functools.partial(hub.wait, entry.job_id)
        cap = ctx.config.callback.safety_poll_seconds
    elif ctx.lister is not None and ctx.lister.active:
        ctx.lister.expect(entry.job_id, entry.updated_at)
        notice = functools.partial(ctx.lister.wait, entry.job_id)
        look_now = True     # one GET at once: a short job may be done before the next list call
        cap = 2 * cap       # the list is how finished jobs are seen; a job's own GET is the slow safety net
    try:
        view = ctx.client.wait(job, initial=gladia.poll_initial_seconds, cap=cap,
                               deadline=poll_deadline(entry.duration), notice=notice,
                               look_now=look_now)
    except JobFailedError as exc:
        attempts = entry.job_attempts
        if exc.retryable and attempts < ctx.config.workers.max_job_attempts:
            log.warning("job_error_retrying", job_id=entry.job_id, error_code=exc.error_code, job_attempts=attempts)
            ctx.ledger.clear_job(entry.key, keep_upload=True)
            return None
        if ctx.budget is not None and entry.duration is None:
            # Counted at the worst case until the job said; it ended without audio to count: none was sent.
            ctx.ledger.correct_spending(entry.key, 0.0)
            ctx.budget.freed.set()
        reason = f"Gladia job {entry.job_id} ended in error (error_code {exc.error_code})"
        if is_link_key(entry.key) and entry.audio_url:
            reason += f": Gladia could not fetch or transcribe {shown_url(entry.audio_url)}"
        return fail(ctx, entry.key, reason, job_ended=True)
    except PermanentApiError as exc:
        if exc.status != 404 or isinstance(exc, AuthenticationError):
            raise
        # Gladia does not know the job (deleted, or lost by the server): a new job pays for nothing twice.
        # Unless the job list still shows our attempt (a GET that raced the create): then poll again later.
        if entry.attempt_id and ctx.client.find_attempt(entry.attempt_id,
                                                        since=datetime.fromtimestamp(entry.updated_at, UTC)):
            raise TransientApiError(f"job {entry.job_id} answered 404 but is listed; polling again later",
                                    status=404) from exc
        if entry.job_attempts >= ctx.config.workers.max_job_attempts:
            return fail(ctx, entry.key, f"Gladia no longer knows job {entry.job_id} (404)", job_ended=True)
        log.warning("job_unknown_creating_again", job_id=entry.job_id, job_attempts=entry.job_attempts)
        ctx.ledger.clear_job(entry.key, keep_upload=True)
        return None
    finally:
        if ctx.hub is not None:
            ctx.hub.forget(entry.job_id)
        if ctx.lister is not None:
            ctx.lister.forget(entry.job_id)
    ctx.ledger.store_result(entry.key, view.raw)
    reported = reported_duration(view.raw)
    if reported is not None and ctx.budget is not None:
        ctx.ledger.correct_spending(entry.key, reported)   # what Gladia counted replaces the estimate
        if entry.duration is None or reported < entry.duration:
            ctx.budget.freed.set()
    ctx.crash("after_result")
    log.info("job_done", job_id=entry.job_id)
    if not publish:          # a part: its result waits for the others, then is stitched
        ctx.ledger.mark_done(entry.key, {})
        return Outcome.DONE
    return publish_stored(ctx, entry.key, view=view)
