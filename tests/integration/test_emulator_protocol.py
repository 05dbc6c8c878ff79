"""The emulator speaks Gladia v2 as the spec says: every body checked against Gladia's own OpenAPI schemas,
the official SDK completes against it, and every route demands the key."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import httpx
from gladiaio_sdk import GladiaClient
from tests.integration.emulator_fixtures import (
    ISO_MS_Z,
    KEY,
    Receiver,
    api,
    check_error,
    check_schema,
    create,
    emulator,
    emulator_factory,
    make_wav,
    receiver,
    upload,
    wait_for,
    wait_status,
    wav,
)

from transcribed.emulator import Emulator

__all__ = ["api", "emulator", "emulator_factory", "receiver", "wav"]  # fixtures used by name

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


def test_upload_answers_200_with_the_spec_fields_and_serves_the_bytes(emulator: Emulator, api: httpx.Client,
                                                                     tmp_path: Path) -> None:
    stereo = make_wav(tmp_path / "meeting.wav", seconds=2.5, channels=2)
    body = upload(api, stereo)
    check_schema("AudioUploadResponse", body)
    metadata = body["audio_metadata"]
    assert re.fullmatch(UUID, metadata["id"])
    assert body["audio_url"] == f"{emulator.base_url}/file/{metadata['id']}"
    assert metadata == {"id": metadata["id"], "filename": "meeting.wav", "extension": "wav",
                        "size": stereo.stat().st_size, "audio_duration": 2.5, "number_of_channels": 2}
    served = api.get(body["audio_url"])
    assert served.status_code == 200
    assert served.headers["content-type"] == "application/octet-stream"
    assert served.content == stereo.read_bytes()
    check_error(httpx.get(body["audio_url"]), 401, "UnauthorizedErrorResponse")


def test_upload_with_trailing_slash_and_by_json_url(emulator: Emulator, api: httpx.Client, wav: Path) -> None:
    with open(wav, "rb") as handle:
        response = api.post("/v2/upload/", files={"audio": ("a.wav", handle, "audio/wav")})
    assert response.status_code == 200
    check_schema("AudioUploadResponse", response.json())

    remote = "https://files.example.com/talks/keynote.mp3"
    by_url = api.post("/v2/upload", json={"audio_url": remote})
    assert by_url.status_code == 200
    check_schema("AudioUploadResponse", by_url.json())
    metadata = by_url.json()["audio_metadata"]
    assert metadata["source"] == remote
    assert metadata["filename"] == "keynote.mp3"
    assert metadata["audio_duration"] == 30.0  # not fetched: an offline stand-in of fixed length

    check_error(api.post("/v2/upload", json={"audio_url": "not a url"}), 400)
    check_error(api.post("/v2/upload", content=b"x", headers={"Content-Type": "multipart/form-data"}), 400)
    no_audio = api.post("/v2/upload", files={"other": ("a.wav", b"RIFF", "audio/wav")})
    assert check_error(no_audio, 400)["validation_errors"] == ["audio should not be empty"]


def test_job_bodies_match_the_schema_in_every_state(emulator_factory: Callable[..., Emulator],
                                                    wav: Path) -> None:
    emulator = emulator_factory(max_concurrent_jobs=1)
    with httpx.Client(base_url=emulator.base_url, headers={"x-gladia-key": KEY}) as api:
        audio_url = upload(api, wav)["audio_url"]
        emulator.set_faults(hold_jobs=True)
        first = create(api, audio_url, custom_metadata={"ref": "a"})
        check_schema("InitPreRecordedTranscriptionResponse", first)
        assert first["result_url"] == f"{emulator.base_url}/v2/pre-recorded/{first['id']}"
        second = create(api, audio_url)
        processing = wait_status(api, first["id"], "processing")
        queued = api.get(f"/v2/pre-recorded/{second['id']}").json()
        assert queued["status"] == "queued"
        for body in (processing, queued):
            check_schema("PreRecordedResponse", body)
            assert body["completed_at"] is None and body["result"] is None and body["error_code"] is None
        assert processing["request_id"] == "G-" + first["id"][:8]
        assert processing["custom_metadata"] == {"ref": "a"} and queued["custom_metadata"] is None
        assert processing["file"]["audio_duration"] == 3.0 and processing["file"]["source"] is None

        emulator.set_faults(hold_jobs=False)
        done = wait_status(api, first["id"])
        check_schema("PreRecordedResponse", done)
        assert done["status"] == "done"
        assert done["version"] == 2 and done["kind"] == "pre-recorded"
        assert ISO_MS_Z.fullmatch(done["created_at"]) and ISO_MS_Z.fullmatch(done["completed_at"])
        assert done["result"]["transcription"]["full_transcript"].startswith("[emulated transcript]")

        emulator.set_faults(job_error_rate=1.0, job_error_code=500)
        failed = wait_status(api, create(api, audio_url)["id"])
        check_schema("PreRecordedResponse", failed)
        assert (failed["status"], failed["error_code"], failed["result"]) == ("error", 500, None)
        assert failed["completed_at"] is not None


def test_list_bodies_match_the_schema_on_both_paths(emulator: Emulator, api: httpx.Client, wav: Path) -> None:
    audio_url = upload(api, wav)["audio_url"]
    wait_status(api, create(api, audio_url)["id"])
    listed = api.get("/v2/pre-recorded", params={"status": "done"})
    assert listed.status_code == 200
    check_schema("ListPreRecordedResponse", listed.json())
    legacy = api.get("/v2/transcription")
    check_schema("ListTranscriptionResponse", legacy.json())
    assert legacy.json()["items"] == listed.json()["items"]
    assert api.get("/v2/transcription", params={"kind": "live"}).json()["items"] == []


def test_legacy_alias_serves_the_same_jobs(emulator: Emulator, api: httpx.Client, wav: Path) -> None:
    audio_url = upload(api, wav)["audio_url"]
    created = api.post("/v2/transcription", json={"audio_url": audio_url})
    assert created.status_code == 201
    job_id = created.json()["id"]
    assert created.json()["result_url"] == f"{emulator.base_url}/v2/transcription/{job_id}"
    done = wait_status(api, job_id)
    assert api.get(f"/v2/transcription/{job_id}").json() == done
    assert api.get(f"/v2/transcription/{job_id}/file").content == wav.read_bytes()
    assert api.delete(f"/v2/transcription/{job_id}").status_code == 202
    assert api.get(f"/v2/pre-recorded/{job_id}").status_code == 404


def test_error_envelopes_match_their_schemas(emulator: Emulator, api: httpx.Client, wav: Path) -> None:
    missing = "/v2/pre-recorded/00000000-0000-0000-0000-000000000000"
    body = check_error(api.get(missing), 404, "NotFoundErrorResponse")
    assert body["path"] == missing and body["message"] == "Not found"
    check_error(api.post("/v2/pre-recorded", json={"audio_url": 1}), 400, "BadRequestErrorResponse")
    check_error(api.get(missing, headers={"x-gladia-key": ""}), 401, "UnauthorizedErrorResponse")
    emulator.set_faults(hold_jobs=True)
    job = create(api, upload(api, wav)["audio_url"])
    check_error(api.delete(f"/v2/pre-recorded/{job['id']}"), 403, "ForbiddenErrorResponse")
    emulator.set_faults(hold_jobs=False, max_upload_bytes=10)
    with open(wav, "rb") as handle:
        too_big = api.post("/v2/upload", files={"audio": ("a.wav", handle, "audio/wav")})
    check_error(too_big, 413, "PayloadTooLargeErrorResponse")
    emulator.set_faults(rate_limit_next={"GET /v2/pre-recorded": 1}, server_error_next={"GET /v2/pre-recorded": 1})
    check_error(api.get("/v2/pre-recorded"), 429)
    failure = api.get("/v2/pre-recorded")
    assert failure.status_code in (500, 502, 503)
    check_error(failure, failure.status_code)
    check_error(api.get("/v2/nothing-here"), 404, "NotFoundErrorResponse")


ROUTES = [
    ("POST", "/v2/upload"), ("POST", "/v2/upload/"), ("POST", "/v2/pre-recorded"), ("GET", "/v2/pre-recorded"),
    ("GET", "/v2/pre-recorded/{id}"), ("DELETE", "/v2/pre-recorded/{id}"), ("GET", "/v2/pre-recorded/{id}/file"),
    ("POST", "/v2/transcription"), ("GET", "/v2/transcription"), ("GET", "/v2/transcription/{id}"),
    ("DELETE", "/v2/transcription/{id}"), ("GET", "/v2/transcription/{id}/file"), ("GET", "/file/{id}"),
]


def test_every_route_answers_401_without_an_accepted_key(emulator_factory: Callable[..., Emulator],
                                                         wav: Path) -> None:
    emulator = emulator_factory(api_keys=frozenset({KEY}))
    with httpx.Client(base_url=emulator.base_url, headers={"x-gladia-key": KEY}) as authorised:
        uploaded = upload(authorised, wav)
        file_id = uploaded["audio_metadata"]["id"]
        job_id = create(authorised, uploaded["audio_url"])["id"]
    with httpx.Client(base_url=emulator.base_url) as client:
        for method, template in ROUTES:
            path = template.replace("{id}", file_id if template.startswith("/file") else job_id)
            for headers in ({}, {"x-gladia-key": "wrong"}, {"x-gladia-key": ""}):
                response = client.request(method, path, headers=headers, json={"audio_url": "https://a.b/c"})
                check_error(response, 401, "UnauthorizedErrorResponse")
        assert client.get("/_emulator/state").status_code == 200  # control endpoints need no key
        assert emulator.counters()["jobs_created"] == 1


def test_the_official_sdk_transcribes_a_file(emulator: Emulator, wav: Path) -> None:
    client = GladiaClient(api_key=KEY, api_url=emulator.base_url).prerecorded()
    result = client.transcribe(str(wav), {"diarization": True, "subtitles": True,
                                          "subtitles_config": {"formats": ["srt", "vtt"]},
                                          "custom_metadata": {"from": "sdk"}}, interval=0.05, timeout=30)
    assert result.status == "done"
    utterances = result.result.transcription.utterances
    assert utterances and utterances[0].text.startswith("[emulated transcript]")
    assert result.result.transcription.subtitles[1].subtitles.startswith("WEBVTT\n\n")
    assert client.get_file(result.id)[:4] == b"RIFF"
    listed = client.list({"custom_metadata": {"from": "sdk"}})
    assert [item.id for item in listed.items] == [result.id]
    assert client.delete(result.id) is True


def test_create_from_a_loopback_url_fetches_it(emulator: Emulator, api: httpx.Client, wav: Path,
                                               receiver: Receiver) -> None:
    receiver.files["/media/talk.wav"] = wav.read_bytes()
    job = wait_status(api, create(api, f"{receiver.url}/media/talk.wav")["id"])
    assert job["status"] == "done"
    assert job["file"]["source"] == f"{receiver.url}/media/talk.wav"
    assert job["file"]["filename"] == "talk.wav" and job["file"]["audio_duration"] == 3.0
    assert "x-gladia-key" not in receiver.requests[0].headers
    served = api.get(f"/v2/pre-recorded/{job['id']}/file").content
    assert hashlib.sha256(served).digest() == hashlib.sha256(wav.read_bytes()).digest()

    missing = wait_status(api, create(api, f"{receiver.url}/media/missing.wav")["id"])
    assert (missing["status"], missing["error_code"]) == ("error", 422)


def test_jobs_and_counters_are_readable_in_process(emulator: Emulator, api: httpx.Client, wav: Path) -> None:
    job = create(api, upload(api, wav)["audio_url"])
    done = wait_status(api, job["id"])
    assert emulator.jobs() == [done]
    counters = wait_for(lambda: emulator.counters().get("jobs_done") and emulator.counters())
    assert counters["POST /v2/upload 200"] == 1 and counters["POST /v2/pre-recorded 201"] == 1
    assert counters["bytes_uploaded"] == wav.stat().st_size and counters["jobs_created"] == 1
