"""One content's state machine: upload -> create -> poll -> outputs, each step recorded before the next.

The next step is read from what the ledger holds (job id, attempt id, audio URL), so a crash at any point
resumes from the last recorded step, and POST /v2/pre-recorded is never sent twice for one attempt
(RELIABILITY.md). Errors are decided by type: transient -> retry later on a schedule kept in the ledger;
permanent -> failed with Gladia's message; 401 -> pause everything.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import functools
import hashlib
import hmac
import json
import os
import random
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from transcribed import media
from transcribed.config import Config
from transcribed.errors import (
    ApiUnavailableError,
    AuthenticationError,
    JobFailedError,
    MediaError,
    NotMediaError,
    PermanentApiError,
    TransientApiError,
)
from transcribed.gladia.client import CreatedJob, GladiaClient, Stopped
from transcribed.gladia.result import JobView
from transcribed.gladia.retry import poll_deadline
from transcribed.inbox.folders import Effective, FolderSettings
from transcribed.inbox.links import LinkError, is_link_key, link_key, read_link
from transcribed.inbox.links import shown as shown_url
from transcribed.ledger import Entry, Ledger
from transcribed.media.probe import wav_probe
from transcribed.outputs.claim import FolderLocks
from transcribed.outputs.hooks import hook_placeholders, run_hook
from transcribed.pipeline import skip
from transcribed.pipeline.budget import HOLD_KIND, Budget, BudgetWait, reported_duration, reserve
from transcribed.pipeline.lister import JobLister
from transcribed.pipeline.prepare import PART_MARK, MediaTools, is_part, part_key
from transcribed.pipeline.publishing import publish_outputs
from transcribed.pipeline.settled import inbox_root
from transcribed.receiver import CallbackHub
from transcribed.receiver.metrics import Metrics

log = structlog.get_logger("transcribed.job")

# Test-only crash points (R1): cli passes TRANSCRIBED_CRASH_AT; the process dies inside that step.
CRASH_POINTS = ("after_upload", "after_intent", "after_create", "after_result", "after_outputs")
MAX_TRANSIENT_ATTEMPTS = 25      # about a day of retries at the 1 h cap, then the file is failed for good
RETRY_CAP_SECONDS = 3600.0
REQUEST_META = "request:"        # + content key: request fields of its own (integrations), JSON in the ledger


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


def run(ctx: Context, key: str) -> Outcome:
    """Carry one content from wherever the ledger says it is to done, failed, skipped or a resumable stop.

    The job runs with the effective settings of its file's folder; while they are invalid nothing is done or
    recorded (HELD: the pool looks at them again and queues the content once they are fixed)."""
    entry = ctx.ledger.get(key)
    if entry is None or is_part(key):
        return Outcome.SKIPPED     # parts are carried by their source's worker
    structlog.contextvars.bind_contextvars(key=key[:19], file=entry.paths[0] if entry.paths else None)
    try:
        source = _source_of(entry)
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
        return _fail(ctx, key, f"Gladia refused it: {exc.describe()}")
    except NotMediaError as exc:       # x.ts that is TypeScript: set aside quietly, nothing was sent
        ctx.ledger.mark_skipped(key, str(exc))
        log.info("file_set_aside", reason=str(exc))
        return Outcome.SKIPPED
    except MediaError as exc:
        if str(exc).startswith("needs ffmpeg"):
            ctx.ledger.mark_skipped(key, str(exc))
            log.warning("file_set_aside", reason=str(exc))
            return Outcome.SKIPPED
        return _fail(ctx, key, str(exc))
    except OSError as exc:
        # Disk full, read-only output folder, vanished file...: nothing half-written is visible; try later.
        return retry_later(ctx, key, f"{exc.__class__.__name__}: {exc.strerror or exc}")
    finally:
        structlog.contextvars.unbind_contextvars("key", "file")


@dataclass(frozen=True)
class PartTask:
    """One part of a split source: its audio is cut from `source` when it is uploaded."""

    source: Path
    plan: media.Plan
    part: media.Part


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
            outcome = _poll_and_publish(ctx, entry, publish=task is None)
            if outcome is not None:
                return outcome
            continue   # the job ended in a retryable error: a new job from the same upload
        if entry.audio_url:
            try:
                _create(ctx, entry)
            except PermanentApiError as exc:
                if fresh_upload or isinstance(exc, AuthenticationError):
                    raise
                # An upload from an earlier run may have expired: upload again once, then create.
                log.warning("audio_url_refused", error=exc.describe())
                ctx.ledger.clear_job(key, keep_upload=False)
            continue
        if task is not None:
            _upload_part(ctx, key, task)
            fresh_upload = True
            continue
        if is_link_key(key):
            outcome = _take_link(ctx, entry)
            if outcome is not None:
                return outcome
            fresh_upload = True
            continue
        source = _source_of(entry)
        if source is None:
            ctx.ledger.mark_skipped(key, "the file is gone from the inbox")
            log.info("file_gone")
            return Outcome.SKIPPED
        outcome = _upload(ctx, entry, source)
        if outcome is not None:
            return outcome
        fresh_upload = True


def _upload(ctx: Context, entry: Entry, source: Path) -> Outcome | None:
    """Upload the source, its extracted audio, or (split) carry every part to done and stitch them: then
    return the outcome. Raise MediaError for a file that cannot be sent (0 bytes uploaded)."""
    size = source.stat().st_size
    if size == 0:
        raise MediaError("the file is empty")
    # Subtitles already there: the folder's listing first (no probe), then the probe's embedded streams.
    wanted = ctx.config.skip.subtitle_languages
    if wanted and ctx.ledger.send_anyway(entry.key):
        wanted = ()
    if wanted and (reason := skip.has_subtitles(ctx.ledger, source, wanted)):
        return _skip(ctx, entry.key, reason)
    if ctx.media is None:
        header = wav_probe(source, size)
        _fits(ctx, header.duration if header else None)
        ctx.ledger.mark_uploading(entry.key)
        _send(ctx, entry.key, source, source.name)
        return None
    plan, found = ctx.media.decide(source)
    if wanted and found and (reason := skip.subtitle_reason(source.name, (), found.subtitle_languages, wanted)):
        return _skip(ctx, entry.key, reason)
    log.info("media_planned", action=plan.action, reason=plan.reason)
    if plan.action != "split":
        _fits(ctx, found.duration if found else None)   # parts reserve their own
    ctx.ledger.mark_uploading(entry.key)
    if plan.action == "as_is":
        _send(ctx, entry.key, source, source.name)
    elif plan.action == "extract":
        assert ctx.media.ffmpeg is not None
        with media.Workspace(ctx.media.config, entry.key[7:19]) as workspace:
            path = media.extract(source, plan, ctx.media.config, ctx.media.ffmpeg, workspace.path(), stop=ctx.stop)
            _send(ctx, entry.key, path, media.upload_name(source, path))
    else:
        return _split(ctx, entry, source, plan, found)
    return None


def _skip(ctx: Context, key: str, reason: str) -> Outcome:
    """Not sent (nothing uploaded, no job): skipped with `reason` until `transcribed retry`."""
    ctx.ledger.mark_skipped(key, reason)
    log.info("file_skipped", reason=reason)
    return Outcome.SKIPPED


def _fits(ctx: Context, seconds: float | None) -> None:
    """Before an upload: raise BudgetWait when audio of this duration (None: unknown until Gladia's upload
    answer says) cannot fit the budget now, so nothing is uploaded for a file that must wait."""
    if ctx.budget is not None and seconds is not None:
        ctx.budget.check(ctx.ledger.usage, seconds)


def _send(ctx: Context, key: str, path: Path, name: str) -> None:
    started = ctx.clock()
    upload = ctx.client.upload(path, filename=name)
    if ctx.metrics is not None:
        ctx.metrics.add("transcribed_uploads_total")
        ctx.metrics.add("transcribed_upload_bytes_total", path.stat().st_size)
    ctx.crash("after_upload")
    ctx.ledger.mark_uploaded(key, upload.audio_url, upload.duration)
    log.info("upload_done", bytes=path.stat().st_size, elapsed=round(ctx.clock() - started, 3),
             duration=upload.duration, name=name)


def _upload_part(ctx: Context, key: str, task: PartTask) -> None:
    assert ctx.media is not None and ctx.media.ffmpeg is not None
    _fits(ctx, task.part.end - task.part.start)
    ctx.ledger.mark_uploading(key)
    with media.Workspace(ctx.media.config, key[7:19]) as workspace:
        path = media.extract(task.source, task.plan, ctx.media.config, ctx.media.ffmpeg, workspace.path(),
                             part=task.part, stop=ctx.stop)
        _send(ctx, key, path, media.upload_name(task.source, path))


def _split(ctx: Context, entry: Entry, source: Path, plan: media.Plan, found: media.Probe | None) -> Outcome:
    """Carry each part (its own ledger content) to done, then stitch their results into this content's."""
    assert ctx.media is not None and ctx.media.ffmpeg is not None and found is not None
    assert found.duration is not None and plan.max_part_seconds is not None
    parts = media.split_points(source, found.duration, plan.max_part_seconds, ctx.media.config, ctx.media.ffmpeg,
                               ctx.stop, stream=plan.stream)
    root = inbox_root(ctx.config, source) or source.parent
    pieces = []
    for part in parts:
        key = part_key(entry.key, part.index, len(parts))
        label = f"{source}{key[len(entry.key):]}"
        part_entry, _ = ctx.ledger.record_seen(key, label, str(root), 0, 0, 0, 0)
        log.info("part_started", part=part.index + 1, parts=len(parts), start=round(part.start, 2),
                 end=round(part.end, 2))
        outcome = _advance(ctx, part_entry, PartTask(source, plan, part))
        if outcome is not Outcome.DONE:
            if outcome is Outcome.FAILED:
                reason = (ctx.ledger.get(key) or part_entry).reason
                return _fail(ctx, entry.key, f"part {part.index + 1} of {len(parts)} failed: {reason}")
            return outcome
        body = ctx.ledger.load_result(key)
        assert body is not None
        pieces.append((part, body))
    ctx.ledger.store_result(entry.key, media.stitch(pieces))
    log.info("parts_stitched", parts=len(parts))
    return publish_stored(ctx, entry.key)


def _take_link(ctx: Context, entry: Entry) -> Outcome | None:
    """A link file: its URL becomes the job's audio_url (Gladia fetches it; nothing is uploaded)."""
    source = _source_of(entry)
    if source is None:
        ctx.ledger.mark_skipped(entry.key, "the link file is gone from the inbox")
        log.info("file_gone")
        return Outcome.SKIPPED
    try:
        url = read_link(source)
    except LinkError as exc:
        return _fail(ctx, entry.key, f"not a usable link file: {exc}")
    if entry.key.split("+")[0] != link_key(url):
        # Edited since it was seen: it is other content now (the watcher hands the new version on).
        ctx.ledger.mark_skipped(entry.key, "the link file now points to another URL")
        log.info("file_gone")
        return Outcome.SKIPPED
    ctx.ledger.mark_uploaded(entry.key, url)
    log.info("link_taken", url=shown_url(url))
    return None


def _create(ctx: Context, entry: Entry) -> None:
    request = request_for(ctx, entry.key)
    request["audio_url"] = entry.audio_url
    look_first = entry.attempt_id is not None
    attempt_id = entry.attempt_id or str(uuid.uuid4())
    if ctx.hub is not None:
        token = ctx.hub.issue(ctx.callback_token(attempt_id))
        request["callback"] = True
        request["callback_config"] = {"url": ctx.hub.callback_url(token),
                                      "method": ctx.config.callback.method}
    if not look_first:
        reserve(ctx.budget, ctx.ledger, entry, attempt_id, intent=True)   # one transaction with the intent
        ctx.crash("after_intent")
        since = datetime.fromtimestamp(ctx.clock(), UTC)
    else:
        reserve(ctx.budget, ctx.ledger, entry, attempt_id, intent=False)  # resumed: reserved already, or again
        since = datetime.fromtimestamp(entry.updated_at, UTC)
    try:
        job = ctx.client.create_once(request, attempt_id, look_first=look_first, since=since)
    except PermanentApiError as exc:
        if not isinstance(exc, AuthenticationError):
            ctx.ledger.release(attempt_id)    # Gladia refused the request: no job, nothing spent
        raise
    ctx.crash("after_create")
    ctx.ledger.mark_submitted(entry.key, job.id, job.result_url)
    log.info("job_created", job_id=job.id, attempt_id=attempt_id)


def request_for(ctx: Context, key: str) -> dict[str, Any]:
    """The body of the create for `key`: [transcription], with the fields recorded for this content (a part:
    for its source) by the integrations (pipeline/requests.py) on top."""
    request: dict[str, Any] = dict(ctx.config.transcription.request)
    own = ctx.ledger.get_meta(REQUEST_META + key.split(PART_MARK)[0])
    if own:
        request.update(json.loads(own))
    return request


def _poll_and_publish(ctx: Context, entry: Entry, *, publish: bool = True) -> Outcome | None:
    """Wait for the job; write outputs; return the outcome, or None when a new job should be created."""
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
        reason = f"Gladia job {entry.job_id} ended in error (error_code {exc.error_code})"
        if is_link_key(entry.key) and entry.audio_url:
            reason += f": Gladia could not fetch or transcribe {shown_url(entry.audio_url)}"
        return _fail(ctx, entry.key, reason, job_ended=True)
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
            return _fail(ctx, entry.key, f"Gladia no longer knows job {entry.job_id} (404)", job_ended=True)
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
    ctx.crash("after_result")
    log.info("job_done", job_id=entry.job_id)
    if not publish:          # a part: its result waits for the others, then is stitched
        ctx.ledger.mark_done(entry.key, {})
        return Outcome.DONE
    return publish_stored(ctx, entry.key, view=view)


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
    source = _source_of(entry)
    hooks = ctx.config.hooks
    if hooks.on_done and source is not None:
        _hook(ctx, hooks.on_done, source, outputs, "done", "")
    if ctx.config.output.after == "move" and source is not None and ctx.config.output.done_directory:
        from transcribed.outputs.write import move_source

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


def _fail(ctx: Context, key: str, reason: str, *, job_ended: bool = False) -> Outcome:
    if job_ended:
        ctx.ledger.fail_job(key, reason)    # `retry` then creates a new job from the same upload
    else:
        ctx.ledger.mark_failed(key, reason, retry_at=None)
    log.error("file_failed", reason=reason)
    entry = ctx.ledger.get(key)
    source = _source_of(entry) if entry else None
    if ctx.config.hooks.on_failed and source is not None:
        _hook(ctx, ctx.config.hooks.on_failed, source, [], "failed", reason)
    return Outcome.FAILED


def retry_later(ctx: Context, key: str, reason: str, delay: float | None = None, *, count: bool = True) -> Outcome:
    """A passing failure: mark it failed with a retry time kept in the ledger (backoff from its attempts)."""
    entry = ctx.ledger.get(key)
    attempts = entry.attempts if entry else 0
    if count and attempts + 1 >= MAX_TRANSIENT_ATTEMPTS:
        return _fail(ctx, key, f"gave up after {attempts + 1} attempts: {reason}")
    if delay is None:
        delay = ctx.rng.uniform(0.5, 1.0) * min(RETRY_CAP_SECONDS, 30.0 * 2 ** min(attempts, 16))
    ctx.ledger.mark_failed(key, reason, retry_at=ctx.clock() + delay)
    if ctx.metrics is not None:
        ctx.metrics.add("transcribed_retries_total")
    log.warning("file_retry_scheduled", reason=reason, retry_in=round(delay, 1), attempts=attempts + 1)
    return Outcome.RETRY_LATER


def _source_of(entry: Entry) -> Path | None:
    for text in entry.paths:
        path = Path(text)
        if path.is_file():
            return path
    return None
