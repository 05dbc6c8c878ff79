"""How a content's job ends: done (outputs published, then the on_done hook and the source moved), failed
(the on_failed hook), retried later on a backoff kept in the ledger, or skipped without being sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import structlog

from transcribed.gladia.result import JobView
from transcribed.ledger import Entry
from transcribed.outputs.hooks import hook_placeholders, run_hook
from transcribed.pipeline.context import Context, Outcome, source_of
from transcribed.pipeline.publishing import publish_outputs
from transcribed.pipeline.settled import inbox_root

log = structlog.get_logger("transcribed.job")

MAX_TRANSIENT_ATTEMPTS = 25      # about a day of retries at the 1 h cap, then the file is failed for good
RETRY_CAP_SECONDS = 3600.0


def publish_stored(ctx: Context, key: str, paths: Sequence[str] | None = None, *,
                   view: JobView | None = None) -> Outcome:
    """Write outputs from the result (`view`, else the stored one) for every path of this content still in an
    inbox; mark done."""
    written = publish_outputs(ctx.ledger, ctx.config, key, paths, crash=ctx.crash, view=view,
                              locks=ctx.output_locks, folders=ctx.folders)
    entry = ctx.ledger.get(key)
    if written is None or entry is None:
        return Outcome.SKIPPED
    if written or paths is None:
        _after_done(ctx, entry, written)
    return Outcome.DONE


def _after_done(ctx: Context, entry: Entry, outputs: list[str]) -> None:
    source = source_of(entry)
    hooks = ctx.config.hooks
    if hooks.on_done and source is not None:
        _hook(ctx, hooks.on_done, source, outputs, "done", "")
    if ctx.config.output.after == "move" and source is not None and ctx.config.output.done_directory:
        from transcribed.outputs.move import move_source

        root = inbox_root(ctx.config, source)
        if root is not None:
            moved = move_source(source, root, ctx.config.output.done_directory)
            # Its outputs follow it: a new file arriving under the old name is new work, not a replacement.
            ctx.ledger.move_outputs(str(source), str(moved))
            log.info("source_moved", to=str(moved))


def _hook(ctx: Context, argv: Sequence[str], source: Path, outputs: list[str], state: str, reason: str) -> None:
    roles = {Path(output): Path(output).suffix.lstrip(".") for output in outputs}
    placeholders = hook_placeholders(source, state, reason, [Path(o) for o in outputs], roles=roles)
    outcome = run_hook(argv, placeholders, ctx.config.hooks.timeout_seconds, env=ctx.hook_env, stop=ctx.stop)
    if outcome.ok:
        log.info("hook_ran", hook=argv[0], state=state)
    else:
        log.warning("hook_failed", hook=argv[0], state=state, returncode=outcome.returncode,
                    timed_out=outcome.timed_out, error=outcome.error, stderr=outcome.stderr_tail)


def fail(ctx: Context, key: str, reason: str, *, job_ended: bool = False) -> Outcome:
    """Failed for good with `reason` (until `transcribed retry`); run the on_failed hook."""
    if job_ended:
        ctx.ledger.fail_job(key, reason)    # `retry` then creates a new job from the same upload
    else:
        ctx.ledger.mark_failed(key, reason, retry_at=None)
    log.error("file_failed", reason=reason)
    entry = ctx.ledger.get(key)
    source = source_of(entry) if entry else None
    if ctx.config.hooks.on_failed and source is not None:
        _hook(ctx, ctx.config.hooks.on_failed, source, [], "failed", reason)
    return Outcome.FAILED


def retry_later(ctx: Context, key: str, reason: str, delay: float | None = None, *, count: bool = True) -> Outcome:
    """A passing failure: mark it failed with a retry time kept in the ledger (backoff from its attempts)."""
    entry = ctx.ledger.get(key)
    attempts = entry.attempts if entry else 0
    if count and attempts + 1 >= MAX_TRANSIENT_ATTEMPTS:
        return fail(ctx, key, f"gave up after {attempts + 1} attempts: {reason}")
    if delay is None:
        delay = ctx.rng.uniform(0.5, 1.0) * min(RETRY_CAP_SECONDS, 30.0 * 2 ** min(attempts, 16))
    ctx.ledger.mark_failed(key, reason, retry_at=ctx.clock() + delay)
    if ctx.metrics is not None:
        ctx.metrics.add("transcribed_retries_total")
    log.warning("file_retry_scheduled", reason=reason, retry_in=round(delay, 1), attempts=attempts + 1)
    return Outcome.RETRY_LATER


def skipped(ctx: Context, key: str, reason: str) -> Outcome:
    """Not sent (nothing uploaded, no job): skipped with `reason` until `transcribed retry`."""
    ctx.ledger.mark_skipped(key, reason)
    log.info("file_skipped", reason=reason)
    return Outcome.SKIPPED
