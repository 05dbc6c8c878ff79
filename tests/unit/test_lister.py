"""The shared job-list poll: one list call wakes every finished job; a refused list falls back to polling."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from transcribed.errors import PermanentApiError
from transcribed.gladia.client import JobSummary
from transcribed.pipeline.lister import JobLister


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
    lister = JobLister(lambda: client, stop, floor=0.01, ceiling=0.01)  # type: ignore[arg-type,return-value]
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
    lister = JobLister(lambda: client, stop, floor=0.01, ceiling=0.01)  # type: ignore[arg-type,return-value]
    lister.expect("a", 0.0)
    thread = threading.Thread(target=lister.run)
    thread.start()
    try:
        assert lister.wait("a", 30.0) is True
        thread.join(10)
        assert not thread.is_alive() and lister.active is False and client.calls == 1
    finally:
        stop.set()
        thread.join(10)
