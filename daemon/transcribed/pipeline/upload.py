"""The upload step: a source's bytes reach Gladia (as they are, as extracted audio, or split into parts), or a
link file's URL is taken as the audio URL; the upload is recorded before anything else is sent.

Before an upload the audio budget is checked (nothing is uploaded for a file that must wait), and a file
whose subtitles are already there is skipped unsent. A split source carries each part (its own ledger
content) through the whole job by the `advance` it is given, then stitches their results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from transcribed import media
from transcribed.errors import MediaError
from transcribed.inbox.links import LinkError, link_key, read_link
from transcribed.inbox.links import shown as shown_url
from transcribed.ledger import Entry
from transcribed.media.probe import wav_probe
from transcribed.pipeline import skip
from transcribed.pipeline.context import Context, Outcome, source_of
from transcribed.pipeline.finish import fail, publish_stored, skipped
from transcribed.pipeline.prepare import part_key
from transcribed.pipeline.settled import inbox_root

log = structlog.get_logger("transcribed.job")


@dataclass(frozen=True)
class PartTask:
    """One part of a split source: its audio is cut from `source` when it is uploaded."""

    source: Path
    plan: media.Plan
    part: media.Part


Advance = Callable[[Context, Entry, PartTask], Outcome]   # carries one part from its ledger state to an outcome


def upload(ctx: Context, entry: Entry, source: Path, advance: Advance) -> Outcome | None:
    """Upload the source, its extracted audio, or (split) carry every part to done with `advance` and stitch
    them: then return the outcome. None: uploaded, the job is created next. Raise MediaError for a file that
    cannot be sent (0 bytes uploaded)."""
    size = source.stat().st_size
    if size == 0:
        raise MediaError("the file is empty")
    # Subtitles already there: the folder's listing first (no probe), then the probe's embedded streams.
    wanted = ctx.config.skip.subtitle_languages
    if wanted and ctx.ledger.send_anyway(entry.key):
        wanted = ()
    if wanted and (reason := skip.has_subtitles(ctx.ledger, source, wanted)):
        return skipped(ctx, entry.key, reason)
    if ctx.media is None:
        header = wav_probe(source, size)
        _fits(ctx, header.duration if header else None)
        ctx.ledger.mark_uploading(entry.key)
        _send(ctx, entry.key, source, source.name)
        return None
    plan, found = ctx.media.decide(source)
    if wanted and found and (reason := skip.subtitle_reason(source.name, (), found.subtitle_languages, wanted)):
        return skipped(ctx, entry.key, reason)
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
        return _split(ctx, entry, source, plan, found, advance)
    return None


def _fits(ctx: Context, seconds: float | None) -> None:
    """Before an upload: raise BudgetWait when audio of this duration (None: unknown until Gladia's upload
    answer says) cannot fit the budget now, so nothing is uploaded for a file that must wait."""
    if ctx.budget is not None and seconds is not None:
        ctx.budget.check(ctx.ledger.usage, seconds)


def _send(ctx: Context, key: str, path: Path, name: str) -> None:
    started = ctx.clock()
    answer = ctx.client.upload(path, filename=name)
    if ctx.metrics is not None:
        ctx.metrics.add("transcribed_uploads_total")
        ctx.metrics.add("transcribed_upload_bytes_total", path.stat().st_size)
    ctx.crash("after_upload")
    ctx.ledger.mark_uploaded(key, answer.audio_url, answer.duration)
    log.info("upload_done", bytes=path.stat().st_size, elapsed=round(ctx.clock() - started, 3),
             duration=answer.duration, name=name)


def upload_part(ctx: Context, key: str, task: PartTask) -> None:
    """Cut this part's audio from its source and upload it (recorded under the part's own key)."""
    assert ctx.media is not None and ctx.media.ffmpeg is not None
    _fits(ctx, task.part.end - task.part.start)
    ctx.ledger.mark_uploading(key)
    with media.Workspace(ctx.media.config, key[7:19]) as workspace:
        path = media.extract(task.source, task.plan, ctx.media.config, ctx.media.ffmpeg, workspace.path(),
                             part=task.part, stop=ctx.stop)
        _send(ctx, key, path, media.upload_name(task.source, path))


def _split(ctx: Context, entry: Entry, source: Path, plan: media.Plan, found: media.Probe | None,
           advance: Advance) -> Outcome:
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
        outcome = advance(ctx, part_entry, PartTask(source, plan, part))
        if outcome is not Outcome.DONE:
            if outcome is Outcome.FAILED:
                reason = (ctx.ledger.get(key) or part_entry).reason
                return fail(ctx, entry.key, f"part {part.index + 1} of {len(parts)} failed: {reason}")
            return outcome
        body = ctx.ledger.load_result(key)
        assert body is not None
        pieces.append((part, body))
    ctx.ledger.store_result(entry.key, media.stitch(pieces))
    log.info("parts_stitched", parts=len(parts))
    return publish_stored(ctx, entry.key)


def take_link(ctx: Context, entry: Entry) -> Outcome | None:
    """A link file: its URL becomes the job's audio_url (Gladia fetches it; nothing is uploaded). None: taken,
    the job is created next."""
    source = source_of(entry)
    if source is None:
        ctx.ledger.mark_skipped(entry.key, "the link file is gone from the inbox")
        log.info("file_gone")
        return Outcome.SKIPPED
    try:
        url = read_link(source)
    except LinkError as exc:
        return fail(ctx, entry.key, f"not a usable link file: {exc}")
    if entry.key.split("+")[0] != link_key(url):
        # Edited since it was seen: it is other content now (the watcher hands the new version on).
        ctx.ledger.mark_skipped(entry.key, "the link file now points to another URL")
        log.info("file_gone")
        return Outcome.SKIPPED
    ctx.ledger.mark_uploaded(entry.key, url)
    log.info("link_taken", url=shown_url(url))
    return None
