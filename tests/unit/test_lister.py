"""The shared job-list poll: its cadence (pure, by table); one list call wakes every finished job; a refused
list falls back to polling."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import pytest

from transcribed.errors import PermanentApiError
from transcribed.gladia.client import JobSummary
from transcribed.pipeline.lister import JobLister, ListCadence, list_pause

FAST = ListCadence(floor=0.01, job_pace=0.01, ceiling=0.01)


@pytest.mark.parametrize(("ages", "pause"), [
    ([], None),                                  # nothing in flight: no list call at all
    ([0.0], 3.0),                                # one young job: the SDK's own pace, never costlier than it
    ([0.0, 0.0], 1.5),                           # two: their paces add up (each pays half a call)
    ([0.0, 0.0, 0.0], 1.0),                      # three or more young jobs: at most one call a second
    ([0.0] * 20, 1.0),
    ([5.0] * 200, 1.0),
    ([60.0], 3.0),                               # a job's own pace grows with its age: 5 % of it, >= 3 s
    ([100.0], 5.0),
    ([120.0] * 20, 2.0),                         # all past a minute: the one-second floor rises with the youngest
    ([600.0] * 100, 10.0),
    ([3600.0] * 100, 30.0),                      # never less than one call per 30 s while jobs wait
    ([600.0], 30.0),                             # one old job: its 30 s pace
    ([0.0] + [3600.0] * 100, 1.0),               # one young job among old ones: back to once a second
    ([30.0, 3600.0], 30 / 11),                   # 1 / (1/3 + 1/30) s
])
def test_list_cadence(ages: list[float], pause: float | None) -> None:
    assert list_pause(ages) == (None if pause is None else pytest.approx(pause))


def job(job_id: str, status: str) -> Any:
    return JobSummary(job_id, status, None)


class FakeClient:
    """Stands in for the API's list endpoint only (the list poll's logic is what is under test)."""

    def __init__(self) -> None:
        self.finished: list[str] = []
        self.calls = 0
        self.refuse = False

    def list_jobs(self, metadata: Any = None, *, since: datetime | None = None,
                  statuses: Sequence[str] = ()) -> Iterator[Any]:
        self.calls += 1
        if self.refuse:
            raise PermanentApiError("status filter not supported", status=400)
        assert set(statuses) == {"done", "error"} and since is not None
        yield from (job(i, "done") for i in self.finished)
        yield job("someone-else", "done")


def test_one_list_call_wakes_each_finished_job_once() -> None:
    client = FakeClient()
    stop = threading.Event()
    lister = JobLister(lambda: client, stop, cadence=FAST)  # type: ignore[arg-type,return-value]
    thread = threading.Thread(target=lister.run)
    thread.start()
    try:
        lister.expect("a", 0.0)
        lister.expect("b", 0.0)
        assert lister.wait("a", 0.05) is False          # not finished yet: the caller polls as a safety net
        client.finished = ["a", "b"]
        assert lister.wait("a", 30.0) is True
        assert lister.wait("b", 30.0) is True
        lister.forget("a")
        lister.forget("b")
    finally:
        stop.set()
        thread.join(10)


def test_a_refused_list_stops_the_lister_and_wakes_every_waiter() -> None:
    client = FakeClient()
    client.refuse = True
    stop = threading.Event()
    now = [0.0]
    lister = JobLister(lambda: client, stop, cadence=FAST, clock=lambda: now[0],  # type: ignore[arg-type,return-value]
                       fallback=30.0)
    lister.expect("a", 0.0)
    thread = threading.Thread(target=lister.run)
    thread.start()
    try:
        assert lister.wait("a", 30.0) is True
        thread.join(10)
        assert not thread.is_alive() and lister.active is False and client.calls == 1
        # From now on the job is polled by itself every `fallback` seconds, as without the list.
        assert lister.wait("a", 0.01) is False
        now[0] = 29.0
        assert lister.wait("a", 0.01) is False
        now[0] = 30.0
        assert lister.wait("a", 0.01) is True
        assert lister.wait("a", 0.01) is False
        now[0] = 60.0
        assert lister.wait("a", 0.01) is True
    finally:
        stop.set()
        thread.join(10)


def test_a_new_job_cuts_short_the_long_pause_left_by_an_old_one() -> None:
    client = FakeClient()
    stop = threading.Event()
    shift = [0.0]
    slow = ListCadence(floor=0.01, job_pace=0.01, share=1.0, job_ceiling=1000.0, settle=1e9, ceiling=1000.0)
    lister = JobLister(lambda: client, stop, clock=lambda: time.monotonic() + shift[0],  # type: ignore[arg-type,return-value]
                       cadence=slow)
    lister.expect("old", 0.0)
    shift[0] = 1000.0                                   # "old" has waited 1000 s: next list call in 1000 s
    thread = threading.Thread(target=lister.run)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while client.calls < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert client.calls == 1
        client.finished = ["new"]
        lister.expect("new", 0.0)                       # a young job: looked for within the floor, not 1000 s
        assert lister.wait("new", 30.0) is True
        assert client.calls == 2
    finally:
        stop.set()
        thread.join(10)
