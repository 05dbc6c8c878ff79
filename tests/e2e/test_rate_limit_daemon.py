"""A 429 with Retry-After on job GETs holds every worker of the installed daemon off that route until the
time is up, not only the worker that received it, and is logged once; the shared job-list poll keeps to
a 429 on its route the same way (issue 12, part 4)."""

from __future__ import annotations

from pathlib import Path

from support import DaemonProcess, make_wav, wait_until, write_config
from tests.integration.emulator_fixtures import sent_while_held

from transcribed.emulator import Emulator

GET = "GET /v2/pre-recorded/{id}"
LIST = "GET /v2/pre-recorded"
RETRY_AFTER = 3
FILES = 4


def test_a_429_on_job_gets_holds_every_worker_off_the_route(tmp_path: Path, emulator: Emulator) -> None:
    emulator.set_faults(hold_jobs=True)         # every job stays in flight, so every worker keeps polling
    inbox = tmp_path / "inbox"
    sources = [make_wav(inbox / f"talk-{i}.wav", seconds=1.0, tone=300 + 50 * i) for i in range(FILES)]
    config = write_config(tmp_path / "config.toml", emulator.base_url, inbox, tmp_path / "state" / "ledger.db",
                          workers={"concurrency": FILES})
    daemon = DaemonProcess(config, tmp_path / "run.log", command="once")

    def polled_jobs() -> set[str]:
        return {entry["job_id"] for entry in emulator.requests() if entry["route"] == GET}

    wait_until(lambda: len(polled_jobs()) == FILES, timeout=120, message="every job being polled")
    emulator.set_faults(rate_limit_next={GET: 1, LIST: 1}, retry_after_seconds=RETRY_AFTER)

    def through_after_the_limit(route: str) -> bool:
        log = emulator.requests()
        limited = [entry["answered_at"] for entry in log if entry["route"] == route and entry["status"] == 429]
        return bool(limited) and any(entry["route"] == route and entry["status"] == 200
                                     and entry["received_at"] > limited[0] + RETRY_AFTER for entry in log)

    for route in (GET, LIST):
        wait_until(lambda: through_after_the_limit(route), timeout=120,
                   message=f"{route} answered after the Retry-After window")
    emulator.set_faults(hold_jobs=False)
    assert daemon.wait(120) == 0
    requests = emulator.requests()
    assert sorted(entry["route"] for entry in requests if entry["status"] == 429) == [LIST, GET]
    assert sent_while_held(requests, GET, RETRY_AFTER) == []
    assert sent_while_held(requests, LIST, RETRY_AFTER) == []
    episodes = [event for event in daemon.events() if event.get("event") == "api_rate_limited"]
    assert sorted(event["route"] for event in episodes) == [LIST, GET]       # once per route, not per worker
    assert {event["wait"] for event in episodes} == {RETRY_AFTER}
    for source in sources:
        assert source.with_suffix(".txt").is_file()
    assert emulator.counters()["jobs_created"] == FILES
