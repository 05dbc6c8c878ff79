"""Pure checks of what the callback receiver is sent (API.md §6, §12.8-12.9): Gladia's per-job callback
bodies, account webhook bodies, and the Svix signatures of account webhooks. No I/O, no clock of its own.

Every refusal is a BodyError or a short reason string (stable snake_case, fit for a log field); none of them
repeats what the sender sent, so a hostile body cannot reach the logs through them.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

# Callback events that mean "the job ended": the spec's names and the bare ones of older help pages.
FINISHED_CALLBACK_EVENTS = frozenset({"transcription.success", "transcription.error", "success", "error"})
FINISHED_WEBHOOK_EVENTS = frozenset({"transcription.success", "transcription.error"})
KNOWN_WEBHOOK_EVENTS = FINISHED_WEBHOOK_EVENTS | {"transcription.created"}
SVIX_TOLERANCE_SECONDS = 300
# Gladia's job ids are UUIDs; this admits any plain id while keeping log lines and lookups safe.
_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
_SVIX_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class Verdict(enum.Enum):
    """What the hub made of a callback's token: only ACCEPTED changes anything."""

    ACCEPTED = "accepted"
    UNKNOWN = "unknown_job"    # no job awaits this token or id
    WRONG_TOKEN = "wrong_token"  # noqa: S105 - a verdict, not a password


class BodyError(ValueError):
    """A body the receiver refuses (answered 400); `reason` is a stable snake_case word for the logs."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Notice:
    """What a callback or webhook says: which job (None when the body names none), which event, and
    whether that event means the job has ended (success or error)."""

    job_id: str | None
    event: str
    finished: bool


def token_digest(token: str) -> bytes:
    """Return the SHA-256 of a callback token: the key tokens are looked up by, so that a lookup's timing
    says nothing about the token itself."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def _object(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: hostile nesting such as [[[[...]]]]
        raise BodyError("not_json") from None
    if not isinstance(document, dict):
        raise BodyError("not_an_object")
    return document


def _job_id(value: object) -> str:
    if not isinstance(value, str) or not _JOB_ID.fullmatch(value):
        raise BodyError("bad_job_id")
    return value


def callback_notice(body: bytes) -> Notice:
    """Given a per-job callback body, return its Notice; raise BodyError when it is not a JSON object with
    a string `event` (and, when present, a plain string `id`).

    `{id, event: "transcription.success", payload}` and `{id, event: "transcription.error", error}` are
    Gladia's shapes; the bare `success` / `error` of older help pages are accepted too, with or without an
    id (the token in the URL names the job). Other events are returned with finished=False.
    """
    document = _object(body)
    event = document.get("event")
    if not isinstance(event, str) or not event:
        raise BodyError("no_event")
    job_id = _job_id(document["id"]) if document.get("id") is not None else None
    return Notice(job_id, event, event in FINISHED_CALLBACK_EVENTS)


def webhook_notice(body: bytes) -> Notice:
    """Given an account webhook body `{event, payload: {id}}`, return its Notice; raise BodyError when it
    is not such an object. Events other than transcription.created/success/error (live sessions, future
    ones) are returned with job_id None and finished=False: acknowledged, never acted on."""
    document = _object(body)
    event = document.get("event")
    if not isinstance(event, str) or not event:
        raise BodyError("no_event")
    if event not in KNOWN_WEBHOOK_EVENTS:
        return Notice(None, event, finished=False)
    payload = document.get("payload")
    if not isinstance(payload, dict):
        raise BodyError("no_payload")
    return Notice(_job_id(payload.get("id")), event, event in FINISHED_WEBHOOK_EVENTS)


def svix_key(secret: str) -> bytes:
    """Return the HMAC key of a Svix secret "whsec_<base64>"; raise ValueError (naming no part of the
    secret) when it is not one."""
    if not secret.startswith("whsec_"):
        raise ValueError('expected a Svix secret "whsec_<base64>"')
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError('expected a Svix secret "whsec_<base64>"') from None
    if not key:
        raise ValueError('expected a Svix secret "whsec_<base64>"')
    return key


def svix_problem(key: bytes, message_id: str | None, timestamp: str | None, signatures: str | None,
                 body: bytes, now: float) -> str | None:
    """Given the webhook key, the svix-id, svix-timestamp and svix-signature headers, the raw body and the
    wall-clock time, return None when one "v1,<base64>" signature matches HMAC-SHA256(key,
    f"{id}.{timestamp}.{body}") and the timestamp is within SVIX_TOLERANCE_SECONDS of now; else the reason
    ("unsigned", "bad_timestamp", "stale", "bad_signature")."""
    if not message_id or not timestamp or not signatures:
        return "unsigned"
    if not _SVIX_ID.fullmatch(message_id) or not _TIMESTAMP.fullmatch(timestamp.strip()):
        return "bad_timestamp" if _SVIX_ID.fullmatch(message_id) else "bad_signature"
    if abs(now - int(timestamp)) > SVIX_TOLERANCE_SECONDS:
        return "stale"
    signed = f"{message_id}.{timestamp.strip()}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    found = False
    for part in signatures.split(" "):
        version, _, value = part.partition(",")
        # Every candidate is compared (no early exit), so the time taken says nothing about which matched.
        if version == "v1" and hmac.compare_digest(value.encode("ascii", "replace"), expected):
            found = True
    return None if found else "bad_signature"
