"""One shared job-list poll for every job in flight, instead of a GET per job per interval.

While jobs are in flight, GET /v2/pre-recorded?status=done&status=error (newer than the oldest of them) is
sent about every second while they are young and less often as they age (7.5 % of the youngest one's age,
1-10 s); a job seen finished wakes its worker, which confirms it with one GET. Per-job polling stays as a
slow safety net. Used when callbacks are off. If the list is refused (an API without these filters), the
lister stops, wakes every waiter, and workers fall back to polling each job.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from transcribed.errors import AuthenticationError, PermanentApiError, TransientApiError
from transcribed.gladia.client import GladiaClient, Stopped

log = structlog.get_logger("transcribed.lister")
FINISHED = ("done", "error")


class JobLister:
    """Thread-safe registry of jobs in flight, fed by one list poll. `wait` has the callback hub's shape."""

    def __init__(self, client: Callable[[], GladiaClient], stop: threading.Event, *,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 share: float = 0.075, floor: float = 1.0, ceiling: float = 10.0) -> None:
        self._client = client
        self._stop = stop
        self._clock = clock
        self._wall = wall
        self._share, self._floor, self._ceiling = share, floor, ceiling
        self._changed = threading.Condition()
        self._expected: dict[str, tuple[float, float]] = {}   # job id -> (monotonic seen, wall created)
        self._finished: set[str] = set()
        self.active = True
        self.calls = 0

    def expect(self, job_id: str, created_at: float) -> None:
        with self._changed:
            self._expected.setdefault(job_id, (self._clock(), created_at))
            self._changed.notify_all()

    def forget(self, job_id: str) -> None:
        with self._changed:
            self._expected.pop(job_id, None)
            self._finished.discard(job_id)

    def wait(self, job_id: str, timeout: float) -> bool:
        """True when the list showed the job finished; False after `timeout` (time for a safety poll)."""
        with self._changed:
            self._changed.wait_for(lambda: job_id in self._finished or self._stop.is_set(), timeout)
            if job_id in self._finished:
                self._finished.discard(job_id)
                return True
            return False

    def run(self) -> None:
        """The list loop (a thread of the pool's); returns when stop is set or the list is refused."""
        while not self._stop.is_set() and self.active:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._expected) or self._stop.is_set(), 1.0)
                if not self._expected:
                    continue
                youngest = min(self._clock() - seen for seen, _ in self._expected.values())
                oldest = min(created for _, created in self._expected.values())
                waiting = set(self._expected) - self._finished
            if waiting:
                self._look(waiting, oldest)
            pause = min(self._ceiling, max(self._floor, self._share * youngest))
            if self._stop.wait(pause):
                break
        log.info("loop_ended", loop="lister", reason="stopping" if self._stop.is_set() else "list refused")

    def _look(self, waiting: set[str], oldest: float) -> None:
        since = datetime.fromtimestamp(oldest, UTC)
        found: set[str] = set()
        try:
            self.calls += 1
            for job in self._client().list_jobs(since=since, statuses=FINISHED):
                if job.id in waiting and job.status in FINISHED:
                    found.add(job.id)
                    if found == waiting:
                        break
        except AuthenticationError:
            return    # the key was refused: the pool pauses and checks it; the list works again after
        except PermanentApiError as exc:
            log.warning("job_list_refused", error=exc.describe(), fallback="polling each job")
            with self._changed:
                self.active = False
                self._finished |= set(self._expected)   # wake every waiter once: it polls its job now
                self._changed.notify_all()
            return
        except (TransientApiError, Stopped):
            pass
        if found:
            with self._changed:
                self._finished |= found & set(self._expected)
                self._changed.notify_all()
