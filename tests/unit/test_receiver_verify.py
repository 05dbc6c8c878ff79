"""What the receiver accepts: Gladia's callback and webhook bodies (API.md §12.8-12.9), and Svix signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from transcribed.receiver.verify import (
    SVIX_TOLERANCE_SECONDS,
    BodyError,
    Notice,
    callback_notice,
    svix_key,
    svix_problem,
    webhook_notice,
)

JOB = "45463597-20b7-4af7-b3b3-f5fb778203ab"
KEY = b"a webhook signing key"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
NOW = 1_700_000_000.0


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


@pytest.mark.parametrize(("body", "expected"), [
    ({"id": JOB, "event": "transcription.success", "payload": {"transcription": {}}},
     Notice(JOB, "transcription.success", finished=True)),
    ({"id": JOB, "event": "transcription.error", "error": {"code": 422, "message": "x"}, "custom_metadata": {}},
     Notice(JOB, "transcription.error", finished=True)),
    ({"id": JOB, "event": "success", "payload": {}}, Notice(JOB, "success", finished=True)),
    ({"event": "error", "error": {"code": 500, "message": "x"}}, Notice(None, "error", finished=True)),
    ({"id": None, "event": "error"}, Notice(None, "error", finished=True)),
    ({"id": JOB, "event": "transcription.partial"}, Notice(JOB, "transcription.partial", finished=False)),
])
def test_callback_shapes(body: dict[str, object], expected: Notice) -> None:
    assert callback_notice(json.dumps(body).encode()) == expected


@pytest.mark.parametrize(("body", "reason"), [
    (b"", "not_json"),
    (b"{nope", "not_json"),
    (b"\xff\xfe\x00garbage", "not_json"),
    (b"[" * 100_000 + b"]" * 100_000, "not_json"),   # nesting deep enough to exhaust the parser's recursion
    (b"1" * 5000, "not_json"),                        # an integer past Python's digit limit
    (b"[]", "not_an_object"),
    (b'"text"', "not_an_object"),
    (b"{}", "no_event"),
    (b'{"event": 7}', "no_event"),
    (b'{"id": 7, "event": "success"}', "bad_job_id"),
    (b'{"id": "../../etc", "event": "success"}', "bad_job_id"),
    (b'{"id": "a\\nforged log line", "event": "success"}', "bad_job_id"),
    (json.dumps({"id": "a" * 200, "event": "success"}).encode(), "bad_job_id"),
])
def test_bad_callback_bodies(body: bytes, reason: str) -> None:
    with pytest.raises(BodyError) as caught:
        callback_notice(body)
    assert caught.value.reason == reason


@pytest.mark.parametrize(("body", "expected"), [
    ({"event": "transcription.success", "payload": {"id": JOB}}, Notice(JOB, "transcription.success", True)),
    ({"event": "transcription.error", "payload": {"id": JOB}}, Notice(JOB, "transcription.error", True)),
    ({"event": "transcription.created", "payload": {"id": JOB}}, Notice(JOB, "transcription.created", False)),
    ({"event": "live.end_session", "payload": {"id": JOB}}, Notice(None, "live.end_session", False)),
])
def test_webhook_shapes(body: dict[str, object], expected: Notice) -> None:
    assert webhook_notice(json.dumps(body).encode()) == expected


@pytest.mark.parametrize(("body", "reason"), [
    (b"nope", "not_json"),
    (b'{"payload": {"id": "x"}}', "no_event"),
    (b'{"event": "transcription.success"}', "no_payload"),
    (b'{"event": "transcription.success", "payload": []}', "no_payload"),
    (b'{"event": "transcription.success", "payload": {}}', "bad_job_id"),
])
def test_bad_webhook_bodies(body: bytes, reason: str) -> None:
    with pytest.raises(BodyError) as caught:
        webhook_notice(body)
    assert caught.value.reason == reason


def test_svix_key() -> None:
    assert svix_key(SECRET) == KEY
    for bad in ("plain-secret", "whsec_", "whsec_***", "whsec_" + "=" * 4):
        with pytest.raises(ValueError, match="whsec_") as caught:
            svix_key(bad)
        assert str(caught.value) == 'expected a Svix secret "whsec_<base64>"'  # never the value itself


def test_a_good_signature_passes_among_several() -> None:
    body = json.dumps({"event": "transcription.success", "payload": {"id": JOB}}).encode()
    good = sign(KEY, "msg_1", int(NOW), body)
    assert svix_problem(KEY, "msg_1", str(int(NOW)), good, body, NOW) is None
    other = sign(b"old key", "msg_1", int(NOW), body)
    assert svix_problem(KEY, "msg_1", str(int(NOW)), f"{other} {good}", body, NOW) is None  # key rotation
    assert svix_problem(KEY, "msg_1", str(int(NOW)), f"v1a,{good[3:]} {good}", body, NOW) is None


@pytest.mark.parametrize("skew", [-SVIX_TOLERANCE_SECONDS, 0, SVIX_TOLERANCE_SECONDS])
def test_timestamps_within_five_minutes_pass(skew: int) -> None:
    timestamp = int(NOW) + skew
    assert svix_problem(KEY, "m", str(timestamp), sign(KEY, "m", timestamp, b"{}"), b"{}", NOW) is None


def test_refusals() -> None:
    body = b'{"event": "transcription.success", "payload": {"id": "x"}}'
    ts = int(NOW)
    good = sign(KEY, "m", ts, body)
    cases = {
        "unsigned": [(None, str(ts), good), ("m", None, good), ("m", str(ts), None), ("m", str(ts), "")],
        "stale": [("m", str(ts - SVIX_TOLERANCE_SECONDS - 1), sign(KEY, "m", ts - 301, body)),
                  ("m", str(ts + SVIX_TOLERANCE_SECONDS + 1), sign(KEY, "m", ts + 301, body))],
        "bad_timestamp": [("m", "soon", good), ("m", "-5", good), ("m", "1e9", good)],
        "bad_signature": [("m", str(ts), sign(b"another key", "m", ts, body)),
                          ("m", str(ts), "v1a," + good[3:]),
                          ("m", str(ts), good[:-4]),
                          ("m", str(ts), "v1,é"),
                          ("other", str(ts), good),
                          ("m\n", str(ts), good)],
    }
    for reason, variants in cases.items():
        for message_id, timestamp, signature in variants:
            assert svix_problem(KEY, message_id, timestamp, signature, body, NOW) == reason, (message_id, timestamp)
    assert svix_problem(KEY, "m", str(ts), good, body + b" ", NOW) == "bad_signature"
