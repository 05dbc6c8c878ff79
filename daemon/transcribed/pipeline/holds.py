"""Files the pool keeps back: those waiting for the audio budget, and those whose folder settings are invalid.

Budget holds live in the ledger (kind "budget", written by the job that did not fit); BudgetHolds counts the
waiting files for the pool's snapshot and runs the loop that lifts the holds when a new period starts.
Folder-settings holds live only in memory: FolderHolds keeps a file (not read yet, or recorded content) by
path while its folder's .transcribed.toml is invalid, and releases it once the settings are valid again.
Both are thread-safe; what a release does (queue, hand in again) is the pool's, passed in.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from transcribed.inbox import ReadyFile
from transcribed.ledger import Ledger
from transcribed.pipeline.budget import HOLD_KIND, Budget

log = structlog.get_logger("transcribed.pool")

HELD_RECHECK_SECONDS = 2.0     # files held by invalid folder settings: how often the settings are looked at


def sleep_unless(stop: threading.Event, woken: threading.Event, seconds: float) -> bool:
    """Wait up to `seconds`; return True at once when `stop` is set, False when `woken` is set (left set for
    the caller to clear) or the time is up. Looks at `woken` once a second: neither event can wake the other."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if stop.wait(min(left, 1.0)):
            return True
        if woken.is_set():
            return False
    return stop.is_set()


class BudgetHolds:
    """The files waiting for the audio budget. Given the ledger (whose holds of kind "budget" are the truth),
    the stop event and `on_lifted` (called after holds were lifted: queue what is due now)."""

    def __init__(self, ledger: Ledger, stop: threading.Event, *, on_lifted: Callable[[], object]) -> None:
        self._ledger = ledger
        self._stop = stop
        self._on_lifted = on_lifted
        self._lock = threading.Lock()
        self._waiting = set(ledger.held(HOLD_KIND))
        self.tick = 300.0     # the budget loop looks at the clock at least this often (seconds)

    @property
    def waiting(self) -> int:
        """How many files wait for the budget."""
        with self._lock:
            return len(self._waiting)

    def settle(self, key: str, *, waiting: bool) -> None:
        """Note where `key` stands after a job ran: waiting for the budget, or not (any other outcome)."""
        with self._lock:
            if waiting:
                self._waiting.add(key)
            else:
                self._waiting.discard(key)

    def lift(self, why: str) -> int:
        """Let every file waiting for the budget go again (a new period, a larger budget); return how many."""
        lifted = self._ledger.lift_holds(HOLD_KIND)
        with self._lock:
            self._waiting.clear()
        if lifted:
            log.info("budget_holds_lifted", files=lifted, why=why)
            self._on_lifted()
        return lifted

    def run(self, budget: Budget) -> None:
        """Sleep until the next period starts (a timer to the boundary, at most `tick`), then let the files
        waiting for the budget go, until stop is set; also let them go (to be measured again) as soon as
        spending went down (`budget.freed`: a job reported less audio than was reserved). The period is
        compared by its label, so a clock that jumps (DST, suspend, a test's clock) is handled the same way."""
        labels = budget.labels()
        while not sleep_unless(self._stop, budget.freed, min(self.tick, budget.seconds_to_boundary() + 0.05)):
            now = budget.labels()
            if now != labels:
                labels = now
                log.info("budget_period_started", day=now[0], month=now[1])
                self.lift("a new budget period started")
            elif budget.freed.is_set():
                budget.freed.clear()
                if self.waiting:
                    self.lift("spending went down: a job used less audio than was reserved")
        log.info("loop_ended", loop="budget", reason="stopping")


@dataclass(frozen=True)
class Held:
    """A file held back by invalid folder settings: not read yet (`ready`), or recorded content (`key`)."""

    path: Path
    problems: tuple[str, ...]
    ready: ReadyFile | None
    key: str | None


class FolderHolds:
    """The files held back by invalid folder settings, by path."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, Held] = {}
        self.added = threading.Event()   # set when a path is newly held: its recheck should not wait long

    def __bool__(self) -> bool:
        with self._lock:
            return bool(self._held)

    def hold(self, path: Path, problems: tuple[str, ...], *, ready: ReadyFile | None = None,
             key: str | None = None) -> None:
        """Keep a file (not read yet: `ready`; or recorded content: `key`) back while its folder settings are
        invalid; said once per set of problems."""
        with self._lock:
            before = self._held.get(str(path))
            self._held[str(path)] = Held(path, problems, ready, key)
        if before is None:
            self.added.set()
        if before is None or before.problems != problems:
            log.warning("folder_settings_invalid", file=str(path), problems=list(problems),
                        action="the file waits until its folder's .transcribed.toml is fixed")

    @property
    def paths(self) -> list[str]:
        """Paths held back, sorted."""
        with self._lock:
            return sorted(self._held)

    @property
    def unread(self) -> int:
        """How many held files were never identified (no content key, so no outcome in this run)."""
        with self._lock:
            return sum(1 for item in self._held.values() if item.key is None)

    def recheck(self, valid: Callable[[Path], bool], release: Callable[[Held], None]) -> None:
        """Forget held files that are gone; `release` each one whose folder settings are `valid` now, in turn."""
        with self._lock:
            held = list(self._held.values())
        for item in held:
            if not item.path.exists():
                with self._lock:
                    self._held.pop(str(item.path), None)
                continue
            if not valid(item.path):
                continue
            with self._lock:
                self._held.pop(str(item.path), None)
            log.info("folder_settings_fixed", file=str(item.path))
            release(item)
