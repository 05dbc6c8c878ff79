"""Job lifecycle: the concurrency limit keeps extra jobs queued, over-long audio ends in error 422, DELETE
follows the spec's rules, and the list filters (both custom_metadata forms) and paginates newest first."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from gladiaio_sdk import GladiaClient
from tests.integration.emulator_fixtures import (
    KEY,
    api,
    check_error,
    create,
    emulator,
    emulator_factory,
    make_wav,
    upload,
    wait_for,
    wait_status,
    wav,
)

from transcribed.emulator import Emulator

__all__ = ["api", "emulator", "emulator_factory", "wav"]  # fixtures used by name


def statuses(api: httpx.Client, ids: list[str]) -> list[str]:
    return [api.get(f"/v2/pre-recorded/{job_id}").json()["status"] for job_id in ids]


def test_the_concurrency_limit_keeps_extra_jobs_queued(emulator_factory: Callable[..., Emulator], wav: Path) -> None:
    emulator = emulator_factory(max_concurrent_jobs=2)
    with httpx.Client(base_url=emulator.base_url, headers={"x-gladia-key": KEY}) as api:
        audio_url = upload(api, wav)["audio_url"]
        emulator.set_faults(hold_jobs=True)
        ids = [create(api, audio_url)["id"] for _ in range(5)]
        wait_for(lambda: statuses(api, ids)[:2] == ["processing", "processing"], message="two jobs processing")
        assert statuses(api, ids) == ["processing", "processing", "queued", "queued", "queued"]
        emulator.set_faults(hold_jobs=False)
        finished = [wait_status(api, job_id) for job_id in ids]
    assert [job["status"] for job in finished] == ["done"] * 5
    completions = [job["completed_at"] for job in finished]
    assert completions[2:] == sorted(completions[2:])  # queued jobs start oldest first


def test_audio_over_the_plan_limit_ends_in_error_422(emulator_factory: Callable[..., Emulator], wav: Path) -> None:
    emulator = emulator_factory(max_audio_duration_seconds=2.0)
    with httpx.Client(base_url=emulator.base_url, headers={"x-gladia-key": KEY}) as api:
        job = wait_status(api, create(api, upload(api, wav)["audio_url"])["id"])
    assert (job["status"], job["error_code"], job["result"]) == ("error", 422, None)
    assert job["file"]["audio_duration"] == 3.0


def test_delete_follows_the_spec(emulator: Emulator, api: httpx.Client, wav: Path) -> None:
    audio_url = upload(api, wav)["audio_url"]
    emulator.set_faults(hold_jobs=True)
    busy = create(api, audio_url)["id"]
    check_error(api.delete(f"/v2/pre-recorded/{busy}"), 403, "ForbiddenErrorResponse")
    emulator.set_faults(hold_jobs=False)
    wait_status(api, busy)
    deleted = api.delete(f"/v2/pre-recorded/{busy}")
    assert deleted.status_code == 202 and deleted.content == b""
    check_error(api.get(f"/v2/pre-recorded/{busy}"), 404, "NotFoundErrorResponse")
    check_error(api.get(f"/v2/pre-recorded/{busy}/file"), 404, "NotFoundErrorResponse")
    check_error(api.delete(f"/v2/pre-recorded/{busy}"), 404, "NotFoundErrorResponse")
    check_error(api.delete("/v2/pre-recorded/00000000-0000-0000-0000-000000000000"), 404)
    assert api.get(audio_url).status_code == 404  # its audio went with it

    emulator.set_faults(job_error_rate=1.0)
    failed = wait_status(api, create(api, "https://files.example.com/x.wav")["id"])
    assert failed["status"] == "error"
    assert api.delete(f"/v2/pre-recorded/{failed['id']}").status_code == 202
    assert emulator.jobs() == []


def make_jobs(api: httpx.Client, wav: Path) -> dict[str, str]:
    audio_url = upload(api, wav)["audio_url"]
    ids = {}
    for name, metadata in [("a", {"tenant": "acme", "attempt": "1"}), ("b", {"tenant": "acme", "attempt": "2"}),
                           ("c", {"tenant": "other", "n": 5, "flag": True}), ("d", None)]:
        extra: dict[str, Any] = {"custom_metadata": metadata} if metadata else {}
        ids[name] = create(api, audio_url, **extra)["id"]
    for job_id in ids.values():
        wait_status(api, job_id)
    return ids


def listed(api: httpx.Client, params: Any) -> list[str]:
    response = api.get("/v2/pre-recorded", params=params)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_list_filters_by_custom_metadata_in_both_forms(emulator: Emulator, api: httpx.Client, wav: Path) -> None:
    ids = make_jobs(api, wav)
    assert listed(api, {"custom_metadata[tenant]": "acme"}) == [ids["b"], ids["a"]]
    assert listed(api, {"custom_metadata": json.dumps({"tenant": "acme"})}) == [ids["b"], ids["a"]]
    assert listed(api, [("custom_metadata[tenant]", "acme"), ("custom_metadata[attempt]", "1")]) == [ids["a"]]
    assert listed(api, {"custom_metadata": json.dumps({"tenant": "acme", "attempt": "2"})}) == [ids["b"]]
    assert listed(api, {"custom_metadata[n]": "5", "custom_metadata[flag]": "true"}) == [ids["c"]]
    assert listed(api, {"custom_metadata": json.dumps({"n": 5})}) == [ids["c"]]
    assert listed(api, {"custom_metadata": json.dumps({"n": "5"})}) == []  # JSON form compares JSON values
    assert listed(api, {"custom_metadata[tenant]": "nobody"}) == []
    check_error(api.get("/v2/pre-recorded", params={"custom_metadata": "not json"}), 400)
    sdk = GladiaClient(api_key=KEY, api_url=emulator.base_url).prerecorded()
    assert [item.id for item in sdk.list({"custom_metadata": {"attempt": "2"}}).items] == [ids["b"]]


def test_list_filters_by_status_and_dates(emulator: Emulator, api: httpx.Client, wav: Path) -> None:
    ids = make_jobs(api, wav)
    emulator.set_faults(hold_jobs=True)
    busy = create(api, upload(api, wav)["audio_url"])["id"]
    wait_status(api, busy, "processing")
    newest_first = [busy, ids["d"], ids["c"], ids["b"], ids["a"]]
    assert listed(api, {}) == newest_first
    assert listed(api, {"status": "processing"}) == [busy]
    assert listed(api, [("status", "done"), ("status", "processing")]) == newest_first
    assert listed(api, {"status": "queued"}) == []
    check_error(api.get("/v2/pre-recorded", params={"status": "finished"}), 400)
    now = datetime.now(UTC)
    assert listed(api, {"date": now.date().isoformat()}) == newest_first
    assert listed(api, {"date": (now - timedelta(days=2)).date().isoformat()}) == []
    hour = timedelta(hours=1)
    assert listed(api, {"after_date": (now - hour).isoformat(), "before_date": (now + hour).isoformat()}) == \
        newest_first
    assert listed(api, {"before_date": (now - hour).isoformat().replace("+00:00", "Z")}) == []
    emulator.set_faults(hold_jobs=False)


def test_list_paginates_with_absolute_links(emulator: Emulator, api: httpx.Client, wav: Path) -> None:
    ids = make_jobs(api, wav)
    order = [ids["d"], ids["c"], ids["b"], ids["a"]]
    first = api.get("/v2/pre-recorded", params={"status": "done", "limit": 3}).json()
    assert [item["id"] for item in first["items"]] == order[:3]
    assert first["first"] == f"{emulator.base_url}/v2/pre-recorded?status=done&offset=0&limit=3"
    assert first["current"] == first["first"]
    assert first["next"] == f"{emulator.base_url}/v2/pre-recorded?status=done&offset=3&limit=3"
    second = api.get(first["next"]).json()
    assert [item["id"] for item in second["items"]] == order[3:]
    assert second["next"] is None
    default = api.get("/v2/pre-recorded").json()
    assert urlsplit(default["current"]).query == "offset=0&limit=20"
    for bad in ({"limit": "0"}, {"offset": "-1"}, {"limit": "many"}):
        check_error(api.get("/v2/pre-recorded", params=bad), 400)


def test_two_channel_audio_is_billed_per_channel(emulator: Emulator, api: httpx.Client, tmp_path: Path) -> None:
    stereo = make_wav(tmp_path / "stereo.wav", seconds=4.0, channels=2)
    job = wait_status(api, create(api, upload(api, stereo)["audio_url"])["id"])
    metadata = job["result"]["metadata"]
    assert metadata["audio_duration"] == 4.0 and metadata["number_of_distinct_channels"] == 2
    assert metadata["billing_time"] == 8.0
    assert {utterance["channel"] for utterance in job["result"]["transcription"]["utterances"]} <= {0, 1}
