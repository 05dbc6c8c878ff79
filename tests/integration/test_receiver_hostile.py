"""Hostile requests to the callback receiver, over real HTTP on 127.0.0.1: each gets the right 4xx (or a
timeout), never notifies the hub (so never costs a GET to Gladia), never logs a token or the secret, and
never stops the receiver from taking the next genuine callback."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import socket
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from structlog.testing import capture_logs
from tests.integration.callback_fixtures import (
    GENEROUS,
    SECRET,
    Receiver,
    connect,
    raw,
    read_answer,
    receiver,
    receiver_factory,
    request,
    status_of,
)

__all__ = ["receiver", "receiver_factory"]  # fixtures used by name

JOB = "45463597-20b7-4af7-b3b3-f5fb778203ab"
SUCCESS = json.dumps({"id": JOB, "event": "transcription.success", "payload": {"transcription": {}}}).encode()


def awaiting(receiver: Receiver, job_id: str = JOB) -> str:
    """Make the hub await `job_id`; return its token."""
    token = receiver.hub.new_token()
    receiver.hub.expect(job_id, token)
    return token


def assert_not_notified(receiver: Receiver, job_id: str = JOB) -> None:
    assert receiver.hub.notified_at(job_id) is None
    assert not receiver.hub.wait(job_id, 0)


def assert_still_serving(receiver: Receiver) -> None:
    """A genuine callback for another job still gets through and wakes its waiter."""
    token = awaiting(receiver, "job-after")
    body = json.dumps({"id": "job-after", "event": "transcription.success", "payload": {}}).encode()
    assert raw(receiver, request("POST", f"/callback/{token}", body)) == 200
    assert receiver.hub.wait("job-after", GENEROUS)


def svix_headers(secret: str, body: bytes, *, message_id: str = "msg_1",
                 timestamp: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if timestamp is None else timestamp
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{message_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {"svix-id": message_id, "svix-timestamp": str(stamp),
            "svix-signature": "v1," + base64.b64encode(digest).decode()}


def test_a_genuine_callback_is_accepted(receiver: Receiver) -> None:
    token = awaiting(receiver)
    with httpx.Client(base_url=receiver.url) as client:
        assert client.post(f"/callback/{token}", content=SUCCESS).status_code == 200
    assert receiver.hub.wait(JOB, GENEROUS)


def test_wrong_tokens_and_unknown_jobs_get_404_without_detail(receiver: Receiver) -> None:
    token = awaiting(receiver)
    other = awaiting(receiver, "job-other")
    unknown_job = json.dumps({"id": "job-nobody", "event": "transcription.success"}).encode()
    with httpx.Client(base_url=receiver.url) as client:
        answers = [
            client.post(f"/callback/{other}", content=SUCCESS),             # another job's token
            client.post(f"/callback/{'A' * 43}", content=SUCCESS),          # a token never handed out
            client.post(f"/callback/{token}", content=unknown_job),         # a job nobody awaits
            client.post(f"/callback/{token[:-1]}", content=SUCCESS),        # one character short
            client.post("/callback/short", content=SUCCESS),
            client.post("/callback/", content=SUCCESS),
            client.post("/nothing-here", content=SUCCESS),
        ]
    assert [answer.status_code for answer in answers] == [404] * len(answers)
    assert all(answer.content == b"" for answer in answers)
    # Dot segments are not resolved (httpx would resolve them itself: sent raw).
    assert raw(receiver, request("POST", f"/callback/{token}/../../webhook", SUCCESS)) == 404
    assert raw(receiver, request("POST", f"/callback/{token}%2F..%2Fwebhook", SUCCESS)) == 404
    assert_not_notified(receiver)
    assert_not_notified(receiver, "job-other")
    assert_still_serving(receiver)


def test_bodies_that_are_not_callbacks_get_400(receiver: Receiver) -> None:
    token = awaiting(receiver)
    bodies = [b"", b"{not json", b"\xff\xfe garbage", b"[]", b'"text"', b"{}", b'{"event": 1}',
              b'{"id": 7, "event": "success"}', b"[" * 50_000 + b"]" * 50_000]
    statuses = [raw(receiver, request("POST", f"/callback/{token}", body)) for body in bodies]
    assert statuses == [400] * len(bodies)
    assert_not_notified(receiver)
    assert_still_serving(receiver)


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/callback/{token}"), ("DELETE", "/callback/{token}"), ("PATCH", "/callback/{token}"),
    ("HEAD", "/callback/{token}"), ("BREW", "/callback/{token}"), ("GET", "/webhook"), ("PUT", "/webhook"),
])
def test_wrong_methods_get_405(receiver: Receiver, method: str, path: str) -> None:
    token = awaiting(receiver)
    with connect(receiver) as connection:
        connection.sendall(request(method, path.format(token=token), SUCCESS))
        answer = read_answer(connection)
    assert status_of(answer) == 405
    assert b"\r\nAllow: POST" in answer
    assert_not_notified(receiver)


def test_a_body_over_the_limit_gets_413_before_it_is_read(receiver_factory: Callable[..., Receiver]) -> None:
    receiver = receiver_factory(max_body_bytes=64 * 1024, server_options={"request_seconds": GENEROUS})
    token = awaiting(receiver)
    with connect(receiver) as connection:
        # Declares 10 MB, sends 1 KB and keeps the connection open: a server that read the body would wait
        # for the rest until its deadline (408); this one answers from the headers alone.
        connection.sendall(request("POST", f"/callback/{token}", b"", {"Content-Length": str(10_000_000)}))
        connection.sendall(b"{" + b" " * 1023)
        assert status_of(read_answer(connection)) == 413
    # A webhook is tiny: its own, smaller limit.
    big = json.dumps({"event": "transcription.success", "payload": {"id": JOB}, "pad": "x" * 65_536}).encode()
    assert raw(receiver, request("POST", "/webhook", big)) == 413
    assert_not_notified(receiver)
    assert_still_serving(receiver)


def test_framing_problems(receiver: Receiver) -> None:
    token = awaiting(receiver)
    path = f"/callback/{token}"
    many_headers = b"".join(f"X-{n}: y\r\n".encode() for n in range(200))
    cases = [
        (request("POST", path, SUCCESS, {"Content-Length": None}), 411),
        (request("POST", path, b"5\r\nhello\r\n0\r\n\r\n", {"Content-Length": None, "Transfer-Encoding": "chunked"}),
         411),
        (request("POST", path, SUCCESS, {"Content-Length": "-1"}), 400),
        (request("POST", path, SUCCESS, {"Content-Length": "1e3"}), 400),
        (request("POST", path, SUCCESS, {"Content-Length": "9" * 40}), 400),
        (request("POST", path, SUCCESS[:10], {"Content-Length": str(len(SUCCESS))}), 400),   # cut short
        (b"GARBAGE\r\n\r\n", 400),
        (b"POST " + b"/x" * 40_000 + b" HTTP/1.1\r\n\r\n", 414),
        (request("POST", path, SUCCESS, {"X-Long": "y" * 70_000}), 431),
        (f"POST {path} HTTP/1.1\r\n".encode() + many_headers + b"\r\n", 431),
    ]
    assert [raw(receiver, data) for data, _ in cases] == [status for _, status in cases]
    assert_not_notified(receiver)
    assert_still_serving(receiver)


def test_two_content_lengths_that_disagree_get_400(receiver: Receiver) -> None:
    token = awaiting(receiver)
    data = (f"POST /callback/{token} HTTP/1.1\r\nHost: r\r\nContent-Length: {len(SUCCESS)}\r\n"
            f"Content-Length: 5\r\n\r\n").encode() + SUCCESS
    assert raw(receiver, data) == 400
    assert_not_notified(receiver)


def test_slow_loris_clients_are_cut_off_and_disturb_nobody(receiver_factory: Callable[..., Receiver]) -> None:
    receiver = receiver_factory(server_options={"request_seconds": 0.5})
    token = awaiting(receiver)
    stalled = connect(receiver)
    stalled.sendall(f"POST /callback/{token} HTTP/1.1\r\nHost: r\r\n".encode())   # headers never end
    trickling = connect(receiver)
    trickling.sendall(request("POST", f"/callback/{token}", b"", {"Content-Length": str(len(SUCCESS))}))
    stop = threading.Event()

    def trickle() -> None:  # one byte every 50 ms, forever: only a whole-request deadline ends this
        for byte in SUCCESS * 100:
            if stop.wait(0.05):
                return
            try:
                trickling.sendall(bytes([byte]))
            except OSError:
                return

    dripper = threading.Thread(target=trickle)
    dripper.start()
    try:
        assert_still_serving(receiver)   # while both are connected
        assert status_of(read_answer(stalled)) == 408
        assert status_of(read_answer(trickling)) == 408
    finally:
        stop.set()
        dripper.join()
        stalled.close()
        trickling.close()
    assert_not_notified(receiver)


def test_connections_are_bounded(receiver_factory: Callable[..., Receiver]) -> None:
    receiver = receiver_factory(server_options={"max_connections": 2, "request_seconds": GENEROUS})
    idle = [connect(receiver), connect(receiver)]
    for connection in idle:
        connection.sendall(b"POST /webhook HTTP/1.1\r\n")   # hold a slot
    try:
        assert raw(receiver, request("POST", "/webhook", b"{}")) == 503
    finally:
        for connection in idle:
            connection.close()
    # The slots come back once the idle clients are gone.
    token = awaiting(receiver)
    deadline = time.monotonic() + GENEROUS
    while (status := raw(receiver, request("POST", f"/callback/{token}", SUCCESS))) == 503:
        assert time.monotonic() < deadline, "the slots never came back"
        threading.Event().wait(0.01)
    assert status == 200 and receiver.hub.wait(JOB, GENEROUS)


def test_random_garbage_never_breaks_the_receiver(receiver: Receiver) -> None:
    token = awaiting(receiver)
    chance = random.Random(7)
    prefixes = [b"", b"POST /webhook HTTP/1.1\r\n", f"POST /callback/{token} HTTP/1.1\r\n".encode(),
                f"PUT /callback/{token} HTTP/1.1\r\nContent-Length: 40\r\n\r\n".encode()]
    with capture_logs() as logs:
        for _ in range(60):
            noise = bytes(chance.randrange(256) for _ in range(chance.randrange(1, 400)))
            status = raw(receiver, chance.choice(prefixes) + noise)
            assert status == 0 or 400 <= status < 500, status
    assert not [entry for entry in logs if entry["log_level"] in ("error", "critical")]
    assert_not_notified(receiver)
    assert_still_serving(receiver)


def test_webhooks_must_be_signed_when_a_secret_is_set(receiver_factory: Callable[..., Receiver]) -> None:
    receiver = receiver_factory(webhook_secret=SECRET)
    awaiting(receiver)
    body = json.dumps({"event": "transcription.success", "payload": {"id": JOB}}).encode()
    other = "whsec_" + base64.b64encode(b"some other secret").decode()
    refused = [
        {},                                                           # unsigned
        svix_headers(other, body),                                    # signed with another secret
        svix_headers(SECRET, body, timestamp=int(time.time()) - 3600),  # a replay an hour later
        svix_headers(SECRET, body, timestamp=int(time.time()) + 3600),
        {**svix_headers(SECRET, body), "svix-id": "msg_2"},           # headers mixed from two messages
        svix_headers(SECRET, body + b" "),                            # the body was changed
    ]
    with httpx.Client(base_url=receiver.url) as client:
        statuses = [client.post("/webhook", content=body, headers=headers).status_code for headers in refused]
        assert statuses == [401] * len(refused)
        assert_not_notified(receiver)
        assert client.post("/webhook", content=body, headers=svix_headers(SECRET, body)).status_code == 200
    assert receiver.hub.wait(JOB, GENEROUS)


def test_unsigned_webhooks_for_unknown_jobs_are_acknowledged_and_ignored(receiver: Receiver) -> None:
    awaiting(receiver)
    with httpx.Client(base_url=receiver.url) as client:
        for body in [{"event": "transcription.success", "payload": {"id": "job-of-another-app"}},
                     {"event": "transcription.created", "payload": {"id": JOB}},
                     {"event": "live.end_session", "payload": {"id": JOB}}]:
            assert client.post("/webhook", json=body).status_code == 200
        assert client.post("/webhook", content=b"nope").status_code == 400
        assert client.post("/webhook", json={"event": "transcription.success"}).status_code == 400
    assert_not_notified(receiver)


def test_no_token_or_secret_is_ever_logged(receiver_factory: Callable[..., Receiver]) -> None:
    receiver = receiver_factory(webhook_secret=SECRET)
    token = awaiting(receiver)
    body = json.dumps({"event": "transcription.success", "payload": {"id": JOB}}).encode()
    with capture_logs() as logs, httpx.Client(base_url=receiver.url) as client:
        client.post(f"/callback/{token}", content=SUCCESS)
        client.post(f"/callback/{token}", content=b"{nope")
        client.get(f"/callback/{token}")
        client.post(f"/callback/{token[::-1]}", content=SUCCESS)
        client.post("/webhook", content=body)
        client.post("/webhook", content=body, headers=svix_headers(SECRET, body))
    text = repr(logs)
    assert token not in text and token[::-1] not in text and SECRET not in text
    assert SECRET.removeprefix("whsec_") not in text
    assert {entry["event"] for entry in logs} == {"callback_received", "callback_rejected"}
    assert {entry.get("reason") for entry in logs if entry["event"] == "callback_rejected"} \
        == {"not_json", "method", "unknown_token", "unsigned"}
    assert SECRET not in repr(receiver.server) and SECRET not in repr(receiver.config)


def test_stop_cuts_open_connections(receiver_factory: Callable[..., Receiver]) -> None:
    receiver = receiver_factory(server_options={"request_seconds": GENEROUS})
    idle = connect(receiver)
    idle.sendall(b"POST /webhook HTTP/1.1\r\n")
    try:
        receiver.server.stop()   # returns although a client is mid-request; no thread is left behind
        assert read_answer(idle) == b""
    finally:
        idle.close()
    with pytest.raises(RuntimeError):
        _ = receiver.server.address
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", int(receiver.config.listen.rsplit(":", 1)[1]))) != 0
