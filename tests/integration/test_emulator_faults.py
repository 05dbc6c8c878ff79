"""Each fault switch does what it says, at construction and at runtime, in-process and over
/_emulator/; decisions are reproducible from the seed; counters record what happened."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx
import pytest
from tests.integration.emulator_fixtures import (
    KEY,
    api,
    check_error,
    create,
    emulator,
    emulator_factory,
    upload,
    wait_status,
    wav,
)

from transcribed.emulator import Emulator, Faults

__all__ = ["api", "emulator", "emulator_factory", "wav"]  # fixtures used by name

CREATE = "POST /v2/pre-recorded"
LIST = "GET /v2/pre-recorded"
GET = "GET /v2/pre-recorded/{id}"


def test_server_errors_by_probability_hit_only_their_route(emulator_factory: Callable[..., Emulator]) -> None:
    emulator = emulator_factory(Faults(server_error_rate={LIST: 1.0}, server_error_statuses=(502, 503)))
    with httpx.Client(base_url=emulator.base_url, headers={"x-gladia-key": KEY}) as api:
        for _ in range(5):
            failed = api.get("/v2/pre-recorded")
            check_error(failed, failed.status_code)
        assert {api.get("/v2/pre-recorded").status_code for _ in range(20)} <= {502, 503}
        check_error(api.get("/v2/pre-recorded/00000000-0000-0000-0000-000000000000"), 404)
    counters = emulator.counters()
    assert counters[LIST] == 25 and counters.get(f"{LIST} 502", 0) + counters.get(f"{LIST} 503", 0) == 25


def test_the_next_n_requests_fail_then_the_route_recovers(emulator: Emulator, api: httpx.Client) -> None:
    emulator.set_faults(server_error_next={"*": 2}, server_error_statuses=[500])
    assert [api.get("/v2/pre-recorded").status_code for _ in range(3)] == [500, 500, 200]


def test_a_5xx_after_the_effect_still_creates_the_job(emulator: Emulator, api: httpx.Client) -> None:
    emulator.set_faults(server_error_next={CREATE: 1}, server_error_after_effect=True)
    response = api.post("/v2/pre-recorded", json={"audio_url": "https://a.example/x.wav",
                                                  "custom_metadata": {"attempt": "one"}})
    check_error(response, response.status_code)
    assert response.status_code in (500, 502, 503)
    found = api.get("/v2/pre-recorded", params={"custom_metadata[attempt]": "one"}).json()["items"]
    assert len(found) == 1


def test_rate_limit_bursts_answer_429_with_retry_after(emulator: Emulator, api: httpx.Client) -> None:
    emulator.set_faults(rate_limit_next={CREATE: 2}, retry_after_seconds=7)
    body = {"audio_url": "https://a.example/x.wav"}
    for _ in range(2):
        limited = api.post("/v2/pre-recorded", json=body)
        check_error(limited, 429)
        assert limited.headers["retry-after"] == "7"
    assert api.post("/v2/pre-recorded", json=body).status_code == 201
    emulator.set_faults(rate_limit_next={CREATE: 1}, retry_after_http_date=True, retry_after_seconds=120)
    dated = api.post("/v2/pre-recorded", json=body)
    assert dated.status_code == 429
    wait = (parsedate_to_datetime(dated.headers["retry-after"]) - datetime.now(UTC)).total_seconds()
    assert 60 < wait <= 121
    assert emulator.counters()["jobs_created"] == 1


def test_a_dropped_create_still_creates_the_job(emulator: Emulator, api: httpx.Client) -> None:
    emulator.set_faults(drop_next={CREATE: 1})
    with pytest.raises(httpx.TransportError):
        api.post("/v2/pre-recorded", json={"audio_url": "https://a.example/x.wav",
                                           "custom_metadata": {"attempt": "lost-answer"}})
    found = api.get("/v2/pre-recorded", params={"custom_metadata[attempt]": "lost-answer"}).json()["items"]
    assert len(found) == 1  # the client must look before it re-posts
    assert emulator.counters()[f"{CREATE} dropped"] == 1
    assert api.post("/v2/pre-recorded", json={"audio_url": "https://a.example/x.wav"}).status_code == 201


def test_drops_by_probability_reset_connections(emulator: Emulator, api: httpx.Client) -> None:
    emulator.set_faults(drop_rate={LIST: 1.0})
    for _ in range(3):
        with pytest.raises(httpx.TransportError):
            api.get("/v2/pre-recorded")
    emulator.set_faults(drop_rate={})
    assert api.get("/v2/pre-recorded").status_code == 200


def test_a_slow_route_stalls_past_the_client_timeout(emulator: Emulator, api: httpx.Client) -> None:
    emulator.set_faults(delay_seconds={LIST: 10.0})
    with pytest.raises(httpx.ReadTimeout):
        api.get("/v2/pre-recorded", timeout=0.3)
    assert api.get("/v2/pre-recorded/00000000-0000-0000-0000-000000000000").status_code == 404
    # stop() does not wait out the delay: the stop event cuts it short (the fixture stops it).


def test_truncated_json_bodies_do_not_parse(emulator: Emulator, api: httpx.Client) -> None:
    emulator.set_faults(truncate_rate={"*": 1.0})
    response = api.get("/v2/pre-recorded")
    assert response.status_code == 200
    assert len(response.content) == int(response.headers["content-length"])
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_jobs_can_be_made_to_fail(emulator: Emulator, api: httpx.Client, wav: Path) -> None:
    audio_url = upload(api, wav)["audio_url"]
    emulator.set_faults(job_error_rate=1.0, job_error_code=422)
    failed = wait_status(api, create(api, audio_url)["id"])
    assert (failed["status"], failed["error_code"], failed["result"]) == ("error", 422, None)
    emulator.set_faults(job_error_rate=0.0)
    assert wait_status(api, create(api, audio_url)["id"])["status"] == "done"


def test_down_fails_every_api_request_but_not_the_controls(emulator: Emulator, api: httpx.Client) -> None:
    with httpx.Client(base_url=emulator.base_url) as control:
        assert control.post("/_emulator/faults", json={"down": True}).status_code == 200
        for path in ("/v2/pre-recorded", "/v2/pre-recorded/x", "/file/x"):
            check_error(api.get(path), 503)
        control.post("/_emulator/faults", json={"down_status": None})
        with pytest.raises(httpx.TransportError):
            api.get("/v2/pre-recorded")
        state = control.get("/_emulator/state").json()
        assert state["faults"]["down"] is True and state["counters"][f"{LIST} dropped"] == 1
        control.post("/_emulator/faults", json={"down": False})
    assert api.get("/v2/pre-recorded").status_code == 200


def test_the_upload_limit_changes_at_runtime(emulator: Emulator, api: httpx.Client, wav: Path) -> None:
    emulator.set_faults(max_upload_bytes=100)
    with open(wav, "rb") as handle:
        check_error(api.post("/v2/upload", files={"audio": ("a.wav", handle, "audio/wav")}), 413)
    emulator.set_faults(max_upload_bytes=None)
    assert upload(api, wav)["audio_metadata"]["size"] == wav.stat().st_size


def test_control_endpoints_read_change_and_reset(emulator: Emulator, api: httpx.Client) -> None:
    api.get("/v2/pre-recorded")
    with httpx.Client(base_url=emulator.base_url) as control:
        state = control.get("/_emulator/state").json()
        assert state["counters"][LIST] == 1 and state["counters"][f"{LIST} 200"] == 1
        assert state["jobs"] == [] and state["base_url"] == emulator.base_url
        changed = control.post("/_emulator/faults", json={"server_error_rate": {GET: 0.5}, "retry_after_seconds": 3})
        assert changed.json()["server_error_rate"] == {GET: 0.5}
        assert emulator.faults().retry_after_seconds == 3
        assert control.get("/_emulator/faults").json()["retry_after_seconds"] == 3
        assert control.post("/_emulator/faults", json={"explode": True}).status_code == 400
        assert control.post("/_emulator/faults", json={"drop_rate": {LIST: 2}}).status_code == 400
        assert control.post("/_emulator/reset").status_code == 200
        assert control.get("/_emulator/state").json()["counters"] == {}
    assert emulator.counters() == {}
    with pytest.raises(ValueError, match="unknown fault"):
        emulator.set_faults(nonsense=1)
    with pytest.raises(ValueError, match="job_error_code"):
        emulator.set_faults(job_error_code=200)
    with pytest.raises(ValueError, match="no route 'POST /v2/pre-recorded/'"):
        emulator.set_faults(drop_next={"POST /v2/pre-recorded/": 1})  # a typo would never fire


def test_fault_decisions_are_reproducible_from_the_seed(emulator_factory: Callable[..., Emulator]) -> None:
    outcomes = []
    for _ in range(2):
        emulator = emulator_factory(Faults(server_error_rate={LIST: 0.5}), seed=42)
        with httpx.Client(base_url=emulator.base_url, headers={"x-gladia-key": KEY}) as api:
            outcomes.append([api.get("/v2/pre-recorded").status_code for _ in range(30)])
    assert outcomes[0] == outcomes[1]
    assert {200} < set(outcomes[0])


def test_the_request_log_says_when_each_request_came_and_how_it_was_answered(emulator: Emulator,
                                                                             api: httpx.Client) -> None:
    emulator.set_faults(rate_limit_next={GET: 1}, retry_after_seconds=3)
    missing = "/v2/pre-recorded/00000000-0000-0000-0000-000000000000"
    before = datetime.now(UTC).timestamp()
    assert [api.get(missing).status_code, api.get(missing).status_code, api.get("/v2/pre-recorded").status_code] \
        == [429, 404, 200]
    after = datetime.now(UTC).timestamp()
    log = emulator.requests()
    assert [(e["method"], e["route"], e["job_id"], e["status"]) for e in log] == [
        ("GET", GET, missing.rsplit("/", 1)[1], 429), ("GET", GET, missing.rsplit("/", 1)[1], 404),
        ("GET", LIST, None, 200)]
    assert all(before <= e["received_at"] <= e["answered_at"] <= after for e in log)
    assert [e["received_at"] for e in log] == sorted(e["received_at"] for e in log)
    over_http = httpx.get(emulator.base_url + "/_emulator/requests").json()["requests"]
    assert over_http == log                      # the control routes themselves are not logged
    httpx.post(emulator.base_url + "/_emulator/reset").raise_for_status()
    assert emulator.requests() == []
