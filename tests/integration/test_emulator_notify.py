"""Callbacks (POST or PUT, success and error, the deprecated callback_url) and Svix-signed account
webhooks reach a receiver on 127.0.0.1 with the spec's bodies; a dead receiver breaks nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from tests.integration.emulator_fixtures import (
    KEY,
    Receiver,
    api,
    check_schema,
    create,
    emulator,
    emulator_factory,
    receiver,
    upload,
    wait_for,
    wait_status,
    wav,
)

from transcribed.emulator import Emulator, EmulatorSettings

__all__ = ["api", "emulator", "emulator_factory", "receiver", "wav"]  # fixtures used by name

SECRET = "whsec_" + base64.b64encode(b"a test secret of some length").decode()


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_a_success_callback_is_sent_with_the_configured_method(api: httpx.Client, wav: Path, receiver: Receiver,
                                                               method: str) -> None:
    config = {"url": f"{receiver.url}/hooks/gladia?token=abc", "method": method}
    job = create(api, upload(api, wav)["audio_url"], callback=True, callback_config=config,
                 custom_metadata={"ref": "r1"})
    done = wait_status(api, job["id"])
    [request] = receiver.wait(1)
    assert (request.method, request.path) == (method, "/hooks/gladia?token=abc")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("axios/")
    assert not [name for name in request.headers if "signature" in name or name.startswith("svix")]
    body = json.loads(request.body)
    check_schema("CallbackTranscriptionSuccessPayload", body)
    assert body == {"id": job["id"], "event": "transcription.success", "payload": done["result"],
                    "custom_metadata": {"ref": "r1"}}


def test_an_error_callback_carries_code_and_message(emulator: Emulator, api: httpx.Client, receiver: Receiver) -> None:
    emulator.set_faults(job_error_rate=1.0, job_error_code=500)
    job = create(api, "https://files.example.com/a.wav", callback=True, callback_config={"url": receiver.url})
    [request] = receiver.wait(1)
    body = json.loads(request.body)
    check_schema("CallbackTranscriptionErrorPayload", body)
    assert request.method == "POST"
    assert body["id"] == job["id"] and body["event"] == "transcription.error" and body["error"]["code"] == 500
    assert body["error"]["message"] and "custom_metadata" not in body


def test_the_deprecated_callback_url_posts(api: httpx.Client, receiver: Receiver) -> None:
    job = create(api, "https://files.example.com/a.wav", callback_url=f"{receiver.url}/old")
    [request] = receiver.wait(1)
    assert (request.method, request.path) == ("POST", "/old")
    assert json.loads(request.body)["id"] == job["id"]


def test_a_dead_receiver_breaks_nothing(emulator: Emulator, api: httpx.Client) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}/hook"
    job = create(api, "https://files.example.com/a.wav", callback=True, callback_config={"url": dead})
    assert wait_status(api, job["id"])["status"] == "done"
    wait_for(lambda: emulator.counters().get("callbacks_failed") == 1, message="the failed delivery counted")
    assert api.get("/v2/pre-recorded").status_code == 200


def verify_svix(secret: str, headers: dict[str, str], body: bytes) -> bool:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['svix-id']}.{headers['svix-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(part.removeprefix("v1,"), expected) for part in headers["svix-signature"].split())


def test_account_webhooks_are_svix_signed(emulator_factory: Callable[..., Emulator], receiver: Receiver) -> None:
    emulator = emulator_factory(webhook_url=f"{receiver.url}/webhook", webhook_secret=SECRET)
    with httpx.Client(base_url=emulator.base_url, headers={"x-gladia-key": KEY}) as api:
        emulator.set_faults(hold_jobs=True)
        job = create(api, "https://files.example.com/a.wav")
        [created] = receiver.wait(1)
        emulator.set_faults(hold_jobs=False)
        finished = receiver.wait(2)[1]
    assert created.headers["svix-id"] != finished.headers["svix-id"]
    for request, event, schema in [(created, "transcription.created", "WebhookTranscriptionCreatedPayload"),
                                   (finished, "transcription.success", "WebhookTranscriptionSuccessPayload")]:
        assert (request.method, request.path) == ("POST", "/webhook")
        body = json.loads(request.body)
        check_schema(schema, body)
        assert body == {"event": event, "payload": {"id": job["id"]}}
        assert verify_svix(SECRET, request.headers, request.body)
        assert not verify_svix("whsec_" + base64.b64encode(b"another").decode(), request.headers, request.body)


def test_an_error_webhook_without_a_secret_is_unsigned(emulator_factory: Callable[..., Emulator],
                                                       receiver: Receiver) -> None:
    emulator = emulator_factory(webhook_url=receiver.url)
    emulator.set_faults(job_error_rate=1.0)
    with httpx.Client(base_url=emulator.base_url, headers={"x-gladia-key": KEY}) as api:
        job = create(api, "https://files.example.com/a.wav")
    error = receiver.wait(2)[1]
    check_schema("WebhookTranscriptionErrorPayload", json.loads(error.body))
    assert json.loads(error.body)["payload"]["id"] == job["id"] and "svix-signature" not in error.headers


def test_a_malformed_webhook_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="whsec_"):
        Emulator(EmulatorSettings(webhook_secret="plain"))
    assert "whsec_" not in repr(EmulatorSettings(webhook_secret=SECRET, api_keys=frozenset({KEY})))
    assert KEY not in repr(EmulatorSettings(api_keys=frozenset({KEY})))
