"""The create step: POST /v2/pre-recorded for an uploaded content, at most once per attempt.

The attempt id (and the budget's reservation) is recorded before the request is sent, so a crash between
the two is resumed by looking for the attempt among Gladia's jobs first, never by a second paid job.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import structlog

from transcribed.errors import AuthenticationError, PermanentApiError
from transcribed.ledger import Entry
from transcribed.pipeline.budget import reserve
from transcribed.pipeline.context import Context
from transcribed.pipeline.prepare import PART_MARK

log = structlog.get_logger("transcribed.job")

REQUEST_META = "request:"        # + content key: request fields of its own (integrations), JSON in the ledger


def create(ctx: Context, entry: Entry) -> None:
    """Create the job for `entry`'s audio URL (or find the one an earlier run created) and record it.
    Raise PermanentApiError when Gladia refuses the request (its reservation released, unless the key was)."""
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
            if ctx.budget is not None:
                ctx.budget.freed.set()
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
