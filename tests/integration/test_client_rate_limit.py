"""A Retry-After speaks to the whole client: after a 429 on a route, no thread sends on that route until
the time is up, other routes carry on, and the episode is logged once (issue 12, part 4)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from tests.integration.emulator_fixtures import IN_FLIGHT_SLACK, KEY, sent_while_held, wait_for, wav

from transcribed.emulator import Emulator, EmulatorSettings
from transcribed.gladia.client import GladiaClient, Stopped

__all__ = ["wav"]  # fixture used by name

GET = "GET /v2/pre-recorded/{id}"
LIST = "GET /v2/pre-recorded"
RETRY_AFTER = 3
THREADS = 6


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Emulator]:
    with Emulator(EmulatorSettings(api_keys=frozenset({KEY}), processing_seconds=0.05,
                                   data_dir=tmp_path / "data")) as running:
        yield running


def test_a_429_on_job_gets_holds_every_thread_but_not_other_routes(server: Emulator, wav: Path) -> None:
    with GladiaClient(server.base_url, KEY) as client:
        job = client.create_once({"audio_url": client.upload(wav).audio_url}, "attempt-rate")
        client.wait(job, initial=0.05, cap=0.2, deadline=60)
        server.reset_counters()
        server.set_faults(rate_limit_next={GET: 1}, retry_after_seconds=RETRY_AFTER)
        done = threading.Event()
        failures: list[BaseException] = []

        def poll_job() -> None:
            try:
                for _ in range(40):
                    assert client.get(job.id, job.result_url).status == "done"
            except BaseException as exc:  # reported below: a thread's failure must fail the test
                failures.append(exc)

        def list_jobs() -> None:
            while not done.wait(0.05):
                assert any(item.id == job.id for item in client.list_jobs())

        with capture_logs() as logs:
            pollers = [threading.Thread(target=poll_job) for _ in range(THREADS)]
            lister = threading.Thread(target=list_jobs)
            for thread in (*pollers, lister):
                thread.start()
            for thread in pollers:
                thread.join(120)
            done.set()
            lister.join(120)
    assert failures == []
    requests = server.requests()
    limited = [entry for entry in requests if entry["status"] == 429]
    assert [entry["route"] for entry in limited] == [GET]
    assert sent_while_held(requests, GET, RETRY_AFTER) == []
    assert sum(1 for entry in requests if entry["route"] == GET and entry["status"] == 200) == THREADS * 40
    # The list route was not held: it kept answering while the job GETs waited.
    window = limited[0]["answered_at"], limited[0]["answered_at"] + RETRY_AFTER
    assert any(window[0] < entry["received_at"] < window[1] for entry in requests if entry["route"] == LIST)
    episodes = [entry for entry in logs if entry["event"] == "api_rate_limited"]
    assert len(episodes) == 1 and episodes[0]["route"] == GET and episodes[0]["wait"] == RETRY_AFTER
    assert not [entry for entry in logs if entry["event"] == "api_retry" and entry["log_level"] != "debug"]


def test_a_held_route_never_stalls_a_probe_and_a_stop_ends_the_wait(server: Emulator) -> None:
    stop = threading.Event()
    with GladiaClient(server.base_url, KEY, stop=stop) as client:
        server.set_faults(rate_limit_next={LIST: 1}, retry_after_seconds=300)
        with pytest.raises(Stopped):               # the caller's own retry waits on the stop event ...
            stop_soon = threading.Timer(0.5, stop.set)
            stop_soon.start()
            try:
                list(client.list_jobs())
            finally:
                stop_soon.join()
        assert client.probe() is False             # ... and the scheduler's probe does not wait at all
        with pytest.raises(Stopped):               # nor does any other caller, once stopping
            list(client.list_jobs())
    assert [entry["status"] for entry in server.requests()] == [429]


def test_a_reload_hands_the_held_routes_to_the_next_client(server: Emulator, wav: Path) -> None:
    """A reload (SIGHUP) makes a new client; the Retry-After holds it is handed keep its requests off the route."""
    with GladiaClient(server.base_url, KEY) as before:
        job = before.create_once({"audio_url": before.upload(wav).audio_url}, "attempt-reload")
        before.wait(job, initial=0.05, cap=0.2, deadline=60)
        server.reset_counters()
        server.set_faults(rate_limit_next={GET: 1}, retry_after_seconds=RETRY_AFTER)
        assert before.get(job.id, job.result_url).status == "done"      # met the 429, waited, then done
        with GladiaClient(server.base_url, KEY, breaker=before.breaker, gate=before.gate) as after:
            server.set_faults(rate_limit_next={GET: 1}, retry_after_seconds=RETRY_AFTER)
            first = threading.Thread(target=after.get, args=(job.id, job.result_url))
            first.start()                   # meets the 429 and holds the route
            held = wait_for(lambda: [e["answered_at"] for e in server.requests() if e["status"] == 429][1:])
            # Past the slack allowed for requests already in flight, well inside the hold:
            wait_for(lambda: time.time() > held[0] + IN_FLIGHT_SLACK + 0.2)
            assert before.get(job.id, job.result_url).status == "done"     # the other client waits too
            first.join(60)
    requests = server.requests()
    assert len([entry for entry in requests if entry["status"] == 429]) == 2
    assert sent_while_held(requests, GET, RETRY_AFTER) == []
