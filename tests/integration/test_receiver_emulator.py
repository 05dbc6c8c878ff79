"""End to end with the emulator: jobs created with `callback: true` and the hub's URL (POST and PUT), and
Svix-signed account webhooks, wake the waiting worker once the job has finished; the confirming GET then
sees it finished. Real HTTP on 127.0.0.1 both ways; every wait is the hub's own, with a generous timeout."""

from __future__ import annotations

import base64
import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs
from tests.integration.callback_fixtures import GENEROUS, SECRET, Receiver, receiver, receiver_factory
from tests.integration.emulator_fixtures import KEY, create, emulator, emulator_factory, wait_for

from transcribed.emulator import Emulator

__all__ = ["emulator", "emulator_factory", "receiver", "receiver_factory"]  # fixtures used by name

AUDIO = "https://files.example.com/meeting.wav"


def api_for(emulator: Emulator) -> httpx.Client:
    return httpx.Client(base_url=emulator.base_url, headers={"x-gladia-key": KEY}, timeout=GENEROUS)


def create_with_callback(api: httpx.Client, receiver: Receiver, method: str = "POST",
                         **options: Any) -> tuple[str, str]:
    """Create a job whose callback goes to the receiver; expect it; return (job id, token)."""
    token = receiver.hub.new_token()
    job = create(api, AUDIO, callback=True,
                 callback_config={"url": receiver.hub.callback_url(token), "method": method}, **options)
    receiver.hub.expect(job["id"], token)
    return job["id"], token


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_a_callback_wakes_the_worker_once_the_job_is_done(emulator: Emulator, receiver: Receiver,
                                                          method: str) -> None:
    with api_for(emulator) as api:
        emulator.set_faults(hold_jobs=True)
        job_id, _ = create_with_callback(api, receiver, method)
        assert not receiver.hub.wait(job_id, 0)          # nothing yet: the job is held
        emulator.set_faults(hold_jobs=False)
        assert receiver.hub.wait(job_id, GENEROUS)
        confirmed = api.get(f"/v2/pre-recorded/{job_id}").json()   # the worker's confirming GET
    assert confirmed["status"] == "done"
    assert receiver.hub.notified_at(job_id) is not None
    wait_for(lambda: emulator.counters().get("callbacks_delivered") == 1, message="the delivery counted")
    assert not receiver.hub.wait(job_id, 0)              # one notice, one wake-up


def test_an_error_callback_wakes_the_worker_too(emulator: Emulator, receiver: Receiver) -> None:
    emulator.set_faults(job_error_rate=1.0, job_error_code=500)
    with api_for(emulator) as api:
        job_id, _ = create_with_callback(api, receiver, custom_metadata={"attempt": "a1"})
        assert receiver.hub.wait(job_id, GENEROUS)
        assert api.get(f"/v2/pre-recorded/{job_id}").json()["status"] == "error"


def test_a_callback_that_beats_expect_is_not_lost(emulator: Emulator, receiver: Receiver) -> None:
    token = receiver.hub.new_token()
    with api_for(emulator) as api:
        job = create(api, AUDIO, callback=True, callback_config={"url": receiver.hub.callback_url(token)})
    wait_for(lambda: emulator.counters().get("callbacks_delivered") == 1, message="the callback delivered")
    receiver.hub.expect(job["id"], token)                # only now does the worker get round to it
    assert receiver.hub.wait(job["id"], 0)


def test_callbacks_for_forgotten_jobs_are_refused(emulator: Emulator, receiver: Receiver) -> None:
    with api_for(emulator) as api:
        emulator.set_faults(hold_jobs=True)
        job_id, _ = create_with_callback(api, receiver)
        receiver.hub.forget(job_id)                      # e.g. the worker gave the job up
        emulator.set_faults(hold_jobs=False)
    wait_for(lambda: emulator.counters().get("callbacks_failed") == 1, message="the refused delivery")
    assert receiver.hub.notified_at(job_id) is None


def test_signed_webhooks_wake_the_worker(emulator_factory: Callable[..., Emulator],
                                         receiver_factory: Callable[..., Receiver]) -> None:
    receiver = receiver_factory(webhook_secret=SECRET)
    emulator = emulator_factory(webhook_url=receiver.hub.webhook_url, webhook_secret=SECRET)
    with api_for(emulator) as api:
        emulator.set_faults(hold_jobs=True)
        job = create(api, AUDIO)                         # no callback: the account webhook only
        receiver.hub.expect(job["id"], receiver.hub.new_token())
        wait_for(lambda: emulator.counters().get("webhooks_delivered") == 1, message="transcription.created")
        assert receiver.hub.notified_at(job["id"]) is None   # created is not finished
        emulator.set_faults(hold_jobs=False)
        assert receiver.hub.wait(job["id"], GENEROUS)
        assert api.get(f"/v2/pre-recorded/{job['id']}").json()["status"] == "done"
    wait_for(lambda: emulator.counters().get("webhooks_delivered") == 2, message="transcription.success")


def test_webhooks_signed_with_another_secret_are_refused(emulator_factory: Callable[..., Emulator],
                                                         receiver_factory: Callable[..., Receiver]) -> None:
    receiver = receiver_factory(webhook_secret=SECRET)
    other = "whsec_" + base64.b64encode(b"not the configured secret").decode()
    emulator = emulator_factory(webhook_url=receiver.hub.webhook_url, webhook_secret=other)
    with api_for(emulator) as api:
        job = create(api, AUDIO)
        receiver.hub.expect(job["id"], receiver.hub.new_token())
    wait_for(lambda: emulator.counters().get("webhooks_failed") == 2, message="both webhooks refused")
    assert receiver.hub.notified_at(job["id"]) is None and not receiver.hub.wait(job["id"], 0)


def test_callbacks_and_webhooks_together_wake_the_worker_at_least_once(
        emulator_factory: Callable[..., Emulator], receiver: Receiver) -> None:
    emulator = emulator_factory(webhook_url=receiver.hub.webhook_url)   # unsigned: no secret on either side
    with api_for(emulator) as api:
        job_id, _ = create_with_callback(api, receiver)
        assert receiver.hub.wait(job_id, GENEROUS)
    wait_for(lambda: emulator.counters().get("webhooks_delivered") == 2, message="both webhooks")
    wait_for(lambda: emulator.counters().get("callbacks_delivered") == 1, message="the callback")
    assert receiver.hub.notified_at(job_id) is not None


def test_over_ipv6_loopback(emulator: Emulator, receiver_factory: Callable[..., Receiver]) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    receiver = receiver_factory(host="::1")
    assert receiver.config.listen.startswith("[::1]:")
    with api_for(emulator) as api:
        job_id, _ = create_with_callback(api, receiver, "PUT")
        assert receiver.hub.wait(job_id, GENEROUS)


def test_the_token_never_reaches_the_logs(emulator: Emulator, receiver: Receiver) -> None:
    with capture_logs() as logs, api_for(emulator) as api:
        job_id, token = create_with_callback(api, receiver)
        assert receiver.hub.wait(job_id, GENEROUS)
        wait_for(lambda: logs, message="the receiver's log entry")  # written as the hub wakes the worker
    assert [entry["event"] for entry in logs] == ["callback_received"]
    assert logs[0]["job_id"] == job_id and logs[0]["gladia_event"] == "transcription.success"
    assert token not in repr(logs)
