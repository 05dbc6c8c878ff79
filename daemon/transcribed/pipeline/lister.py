"""One shared job-list poll for every job in flight, instead of a GET per job per interval.

While jobs are in flight, GET /v2/pre-recorded?status=done&status=error (newer than the oldest of them) is
sent at the pace `list_pause` decides from their ages: each job asks to be looked at about every 3 s while
young (less often as it ages), one list call answers for all of them, so the list runs at the sum of what
they ask, never more than once a second, and less often once every job is old. A job seen finished wakes
its worker, which confirms it with one GET; per-job polling stays as a slow safety net. Used when callbacks
are off. If the list is refused (an API without these filters), the lister stops, wakes every waiter, and
workers fall back to polling each job every `fallback` seconds (gladia.poll_max_seconds), as before.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from transcribed.errors import AuthenticationError, PermanentApiError, TransientApiError
from transcribed.gladia.client import LIST_PAGE_SIZE, GladiaClient, Stopped

log = structlog.get_logger("transcribed.lister")
FINISHED = ("done", "error")
SLICE_SECONDS = 0.5   # the loop looks at the stop event at least this often


@dataclass(frozen=True)
class ListCadence:
    """How often the shared list runs. A job of age `a` asks for a look every
    `clamp(share * a, job_pace, job_ceiling)` seconds; the list serves all of them at once."""

    floor: float = 1.0          # never more than one list call per `floor` seconds
    job_pace: float = 3.0       # a young job's own pace: the official SDK's fixed poll interval
    share: float = 0.05         # ... growing with its age: 5 % of it
    job_ceiling: float = 30.0   # ... up to this
    settle: float = 60.0        # past this youngest age the floor rises with it (youngest / settle x floor)
    ceiling: float = 30.0       # never less than one list call per `ceiling` seconds while jobs wait


def list_pause(ages: Sequence[float], cadence: ListCadence = ListCadence()) -> float | None:
    """Given the ages (s) of the jobs waiting, return the seconds from one list call to the next, or None
    when nothing waits.

    The list runs at the sum of the rates the jobs ask for (so each job pays at most what polling it alone
    at its own pace would), but never faster than once per `floor` seconds, and that floor itself rises in
    proportion to the youngest job's age past `settle`: many long jobs cost fewer calls as they all age.
    """
    if not ages:
        return None
    rate = sum(1.0 / min(cadence.job_ceiling, max(cadence.job_pace, cadence.share * age)) for age in ages)
    youngest = max(0.0, min(ages))
    lower = cadence.floor * max(1.0, youngest / cadence.settle)
    return min(cadence.ceiling, max(lower, 1.0 / rate))


class JobLister:
    """Thread-safe registry of jobs in flight, fed by one list poll. `wait` has the callback hub's shape."""

    def __init__(self, client: Callable[[], GladiaClient], stop: threading.Event, *,
                 clock: Callable[[], float] = time.monotonic, cadence: ListCadence = ListCadence(),
                 fallback: float = 30.0) -> None:
        self._client = client
        self._stop = stop
        self._clock = clock
        self._cadence = cadence
        self._fallback = fallback
        self._looks: dict[str, float] = {}    # once the list is refused: job id -> when its next GET is due
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
            self._looks.pop(job_id, None)

    def wait(self, job_id: str, timeout: float) -> bool:
        """True when the list showed the job finished (or, once the list was refused, when the job's own GET is
        due); False after `timeout` (time for a safety poll)."""
        with self._changed:
            if not self.active and job_id not in self._finished:
                return self._fallback_due(job_id, timeout)
            self._changed.wait_for(lambda: job_id in self._finished or self._stop.is_set(), timeout)
            if job_id in self._finished:
                self._finished.discard(job_id)
                return True
            return False

    def _fallback_due(self, job_id: str, timeout: float) -> bool:
        """With the lock held, after the list was refused: wait up to `timeout` for the job's next GET."""
        due = self._looks.setdefault(job_id, self._clock())
        if self._clock() < due:
            self._changed.wait(min(timeout, due - self._clock()))
        if self._clock() < due:
            return False
        self._looks[job_id] = self._clock() + self._fallback
        return True

    def run(self) -> None:
        """The list loop (a thread of the pool's); returns when stop is set or the list is refused.

        The pause is counted from the start of the previous call and recomputed whenever a job arrives,
        so a new young job shortens a long pause left by old ones."""
        previous = -math.inf
        while not self._stop.is_set() and self.active:
            with self._changed:
                now = self._clock()
                waiting = {job: seen_created for job, seen_created in self._expected.items()
                           if job not in self._finished}
                pause = list_pause([now - seen for seen, _ in waiting.values()], self._cadence)
                if pause is None or now < previous + pause:
                    left = SLICE_SECONDS if pause is None else previous + pause - now
                    self._changed.wait(min(left, SLICE_SECONDS))
                    continue
                oldest = min(created for _, created in waiting.values())
            previous = now
            self._look(set(waiting), oldest)
        log.info("loop_ended", loop="lister", reason="stopping" if self._stop.is_set() else "list refused")

    def _look(self, waiting: set[str], oldest: float) -> None:
        """One list call: its first page (the newest finished jobs) wakes the waiting jobs it shows; a job
        further down is left to its own safety poll rather than paging through an account's history."""
        since = datetime.fromtimestamp(oldest, UTC)
        found: set[str] = set()
        try:
            self.calls += 1
            for seen, job in enumerate(self._client().list_jobs(since=since, statuses=FINISHED), start=1):
                if job.id in waiting and job.status in FINISHED:
                    found.add(job.id)
                if found == waiting or seen >= LIST_PAGE_SIZE:
                    break
        except AuthenticationError:
            # The key was refused: wake every waiter once, so its own GET meets the 401 and the pool pauses
            # (one api_key_rejected, then the key check); the list works again once the key is accepted.
            with self._changed:
                self._finished |= set(self._expected)
                self._changed.notify_all()
            return
        except PermanentApiError as exc:
            log.warning("job_list_refused", error=exc.describe(), fallback="polling each job")
            with self._changed:
                self.active = False
                self._finished |= set(self._expected)   # wake every waiter once: it polls its job now ...
                due = self._clock() + self._fallback     # ... and again every `fallback` seconds
                self._looks.update((job, due) for job in self._expected)
                self._changed.notify_all()
            return
        except (TransientApiError, Stopped):
            pass
        if found:
            with self._changed:
                self._finished |= found & set(self._expected)
                self._changed.notify_all()
