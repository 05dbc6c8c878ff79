"""Errors are translated at one boundary: every httpx failure class and status family."""

from __future__ import annotations

import json

import httpx
import pytest

from transcribed.errors import AuthenticationError, PermanentApiError, TransientApiError
from transcribed.gladia.client import GladiaClient
from transcribed.gladia.retry import RetryPolicy

ONE_TRY = RetryPolicy(max_attempts=1)


def client_for(handler: httpx.MockTransport) -> GladiaClient:
    return GladiaClient("https://api.example.test", "sk_test_key", policy=ONE_TRY, transport=handler)


@pytest.mark.parametrize(("exc", "body_sent"), [
    (httpx.ConnectError("refused"), False),
    (httpx.ConnectTimeout("slow connect"), False),
    (httpx.PoolTimeout("pool"), False),
    (httpx.ReadTimeout("slow answer"), True),
    (httpx.WriteTimeout("slow write"), True),
    (httpx.ReadError("reset"), True),
    (httpx.WriteError("broken pipe"), True),
    (httpx.RemoteProtocolError("server hung up"), True),
    (httpx.ProxyError("proxy"), True),
])
def test_transport_failures_are_transient(exc: Exception, body_sent: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    with client_for(httpx.MockTransport(handler)) as client, pytest.raises(TransientApiError) as caught:
        client.create({"audio_url": "https://x.test/a.mp3"})
    assert caught.value.body_sent is body_sent
    assert "sk_test_key" not in str(caught.value)


def envelope(status: int, message: str, **extra: object) -> httpx.Response:
    body = {"timestamp": "2026-01-01T00:00:00.000Z", "path": "/v2/pre-recorded", "request_id": "G-1234abcd",
            "statusCode": status, "message": message, **extra}
    return httpx.Response(status, json=body, headers={"retry-after": "7"} if status == 429 else {})


@pytest.mark.parametrize(("status", "kind"), [
    (400, PermanentApiError), (401, AuthenticationError), (403, PermanentApiError), (404, PermanentApiError),
    (413, PermanentApiError), (422, PermanentApiError), (408, TransientApiError), (429, TransientApiError),
    (500, TransientApiError), (502, TransientApiError), (503, TransientApiError), (504, TransientApiError),
])
def test_status_families(status: int, kind: type[Exception]) -> None:
    transport = httpx.MockTransport(lambda request: envelope(status, "nope", validation_errors=["a must be b"]))
    with client_for(transport) as client, pytest.raises(kind) as caught:
        client.get("45463597-20b7-4af7-b3b3-f5fb778203ab")
    error = caught.value
    assert isinstance(error, PermanentApiError | TransientApiError)
    assert error.status == status and error.request_id == "G-1234abcd" and error.message == "nope"
    assert error.validation_errors == ["a must be b"]
    if status == 429:
        assert isinstance(error, TransientApiError) and error.retry_after == 7.0


@pytest.mark.parametrize("body", [b"{\"id\": \"trunc", b"<html>oops</html>", b"[1, 2]"])
def test_malformed_bodies_are_transient_not_crashes(body: bytes) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    with client_for(transport) as client, pytest.raises(TransientApiError):
        client.get("45463597-20b7-4af7-b3b3-f5fb778203ab")


def test_a_redirect_to_another_host_never_carries_the_key() -> None:
    seen: list[tuple[str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.host, request.headers.get("x-gladia-key")))
        if request.url.host == "api.example.test":
            return httpx.Response(302, headers={"location": "https://evil.example.test/steal"})
        return httpx.Response(200, json={"id": "x", "status": "queued", "request_id": "G-1", "version": 2,
                                         "created_at": "2026-01-01T00:00:00.000Z", "kind": "pre-recorded"})

    with client_for(httpx.MockTransport(handler)) as client:
        client.get("45463597-20b7-4af7-b3b3-f5fb778203ab")
    assert seen == [("api.example.test", "sk_test_key"), ("evil.example.test", None)]


def test_result_url_on_another_host_is_not_followed_with_the_key() -> None:
    hosts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        if request.method == "POST":
            return httpx.Response(201, json={"id": "45463597-20b7-4af7-b3b3-f5fb778203ab",
                                             "result_url": "https://evil.example.test/v2/pre-recorded/x"})
        return httpx.Response(200, content=json.dumps({"id": "45463597-20b7-4af7-b3b3-f5fb778203ab"}))

    with client_for(httpx.MockTransport(handler)) as client:
        job = client.create({"audio_url": "https://x.test/a.mp3"})
    assert job.result_url == "https://api.example.test/v2/pre-recorded/45463597-20b7-4af7-b3b3-f5fb778203ab"


def test_abbreviated_list_items_still_find_the_attempt() -> None:
    """Real list items can carry a done job's result with only `metadata` (API.md §12.7): the attempt id
    lookup must still see them, or a lost create answer would be paid for twice."""
    item = {"id": "45463597-20b7-4af7-b3b3-f5fb778203ab", "status": "done", "request_id": "G-45463597",
            "version": 2, "kind": "pre-recorded", "created_at": "2026-01-01T00:00:00.000Z",
            "custom_metadata": {"transcribed_attempt": "attempt-1"},
            "result": {"metadata": {"audio_duration": 6.0, "number_of_distinct_channels": 1,
                                    "billing_time": 6.0, "transcription_time": 3.0}}}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"first": str(request.url), "current": str(request.url), "next": None,
                                         "items": [item]})

    with client_for(httpx.MockTransport(handler)) as client:
        found = client.find_attempt("attempt-1")
    assert found is not None and found.id == item["id"]


def test_a_refused_metadata_filter_falls_back_to_the_date_bound_alone() -> None:
    item = {"id": "job-1", "status": "queued", "custom_metadata": {"transcribed_attempt": "attempt-7"}}
    queries: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        queries.append(str(request.url.query, "ascii"))
        if "custom_metadata" in str(request.url):
            return envelope(400, "property custom_metadata[transcribed_attempt] should not exist")
        return httpx.Response(200, json={"first": "", "current": "", "next": None,
                                         "items": [{"id": "other", "status": "done"}, item]})

    with client_for(httpx.MockTransport(handler)) as client:
        found = client.find_attempt("attempt-7")
    assert found is not None and found.id == "job-1"
    assert len(queries) == 2 and "custom_metadata" not in queries[1]
