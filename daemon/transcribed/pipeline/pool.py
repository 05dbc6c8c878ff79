"""Workers, queue, drain and shutdown.

Files handed on by the watcher are identified on one thread (`identify`: stat fast path, else a fingerprint of
the bytes) and recorded in the ledger; unfinished contents go to a bounded queue, oldest first;
`workers.concurrency` workers carry them through job.run. A refused key pauses the workers until the key check
accepts it again. Files waiting for the audio budget or for valid folder settings are kept by `holds`.
The first stop drains: no new files are taken and in-flight steps stop at a resumable point.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from transcribed.inbox import ReadyFile
from transcribed.ledger import Entry
from transcribed.pipeline import job
from transcribed.pipeline.context import Context, Outcome, settings_for
from transcribed.pipeline.finish import retry_later
from transcribed.pipeline.holds import HELD_RECHECK_SECONDS, BudgetHolds, FolderHolds, Held, sleep_unless
from transcribed.pipeline.identify import Identifier
from transcribed.pipeline.keycheck import KeyCheck, clear_pause
from transcribed.pipeline.lister import JobLister

log = structlog.get_logger("transcribed.pool")

TERMINAL = ("done", "failed", "skipped")


@dataclass
class Snapshot:
    in_flight: int
    queued: int
    done_this_run: int
    done_today: int
    failed_this_run: int
    paused: str | None
    api_down: bool
    last_error: str | None
    waiting: int = 0        # files held for the audio budget


@dataclass
class _Stats:
    done: int = 0
    failed: int = 0
    outcomes: dict[str, Outcome] = field(default_factory=dict)


class Pool:
    """The workers. Given a job Context (client, ledger, config, stop), process what `submit` hands in.

    Thread-safe. `stop` (ctx.stop) set means drain; `join(timeout)` waits for the workers to leave.
    """

    def __init__(self, ctx: Context, *, on_change: Callable[[], None] | None = None) -> None:
        self.ctx = ctx
        self._on_change = on_change
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._intake: deque[ReadyFile] = deque()
        self._work: queue.PriorityQueue[tuple[float, int, str]] = queue.PriorityQueue(
            maxsize=ctx.config.workers.queue_size)
        self._counter = itertools.count()
        self._queued: set[str] = set()
        self._running: set[str] = set()
        self._paused: str | None = None
        self._resume = threading.Event()
        self._stats = _Stats()
        self._threads: list[threading.Thread] = []
        self._last_error: str | None = None
        self._folder_holds = FolderHolds()
        self._done_today = (self._today(), int(ctx.ledger.get_meta(f"done:{self._today()}") or 0))
        self._budget_holds = BudgetHolds(ctx.ledger, ctx.stop, on_lifted=self.enqueue_pending)
        self._identifier = Identifier(ctx, self._folder_holds, self._enqueue)
        self.keys = KeyCheck(lambda: self.ctx.client, ctx.ledger, ctx.stop, on_accepted=self.resume,
                             first=lambda: self.ctx.config.gladia.key_check_seconds, clock=ctx.clock, rng=ctx.rng)

    # ------------------------------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the identifier, the scheduler, the key check and the workers."""
        clear_pause(self.ctx.ledger)    # an earlier run may have stopped while paused
        self._spawn("identify", self._identify_loop)
        self._spawn("schedule", self._schedule_loop)
        budget = self.ctx.budget
        if budget is not None:
            self._spawn("budget", lambda: self._budget_holds.run(budget))
        self._spawn("key-check", self.keys.run)
        if self.ctx.hub is None:
            lister = JobLister(lambda: self.ctx.client, self.ctx.stop,
                               fallback=self.ctx.config.gladia.poll_max_seconds)
            self.ctx.lister = lister
            self._spawn("lister", lister.run)
        for number in range(self.ctx.config.workers.concurrency):
            self._spawn(f"worker-{number + 1}", self._work_loop)

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=f"transcribed-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def join(self, timeout: float) -> bool:
        """Wait for every thread to end (after ctx.stop was set); return True when all did."""
        with self._lock:
            self._wake.notify_all()
        self.keys.wake()
        for _ in range(self.ctx.config.workers.concurrency):
            with contextlib.suppress(queue.Full):
                self._work.put_nowait((float("-inf"), next(self._counter), ""))   # wakes an idle worker
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    # ------------------------------------------------------------------------------------------ intake

    def submit(self, ready: ReadyFile) -> None:
        """Hand in a complete file (called from the watcher's thread: cheap, never blocks)."""
        with self._lock:
            self._intake.append(ready)
            self._wake.notify_all()

    def enqueue_pending(self) -> list[str]:
        """Queue every unfinished ledger entry that is due; return their keys."""
        keys = []
        for entry in self.ctx.ledger.pending(self.ctx.clock()):
            if self._enqueue(entry):
                keys.append(entry.key)
        return keys

    def enqueue(self, key: str) -> bool:
        """Queue the recorded content `key` (the integrations' requests) unless it is queued, running or
        finished; return whether it was queued now."""
        entry = self.ctx.ledger.get(key)
        if entry is None or entry.state in TERMINAL:
            return False
        return self._enqueue(entry)

    def resume(self) -> None:
        """Lift a pause (Gladia accepts the key again): queue every waiting file; work already created is
        polled from where the ledger left it, never created again."""
        with self._lock:
            self._paused = None
            self._resume.set()
            self._wake.notify_all()
        self.enqueue_pending()

    def key_changed(self) -> None:
        """The key may have changed (its file was rewritten, or a reload): while paused, check it at once."""
        self.keys.check_now()

    @property
    def paused(self) -> bool:
        return self.keys.pause is not None

    # ------------------------------------------------------------------------------------------ state

    def snapshot(self) -> Snapshot:
        pause = self.keys.pause
        with self._lock:
            return Snapshot(len(self._running), len(self._queued) + len(self._intake), self._stats.done,
                            self._done_today[1], self._stats.failed, pause.describe() if pause else None,
                            self.ctx.client.breaker.is_open, self._last_error, self._budget_holds.waiting)

    def outcome_of(self, key: str) -> Outcome | None:
        with self._lock:
            return self._stats.outcomes.get(key)

    @property
    def hashed(self) -> int:
        return self._identifier.hashed

    # ------------------------------------------------------------------------------------------ threads

    def _identify_loop(self) -> None:
        stop = self.ctx.stop
        while not stop.is_set():
            with self._lock:
                while not self._intake and not stop.is_set():
                    self._wake.wait(1.0)
                if stop.is_set():
                    break
                ready = self._intake.popleft()
            try:
                self.identify(ready)
            except OSError as exc:
                log.info("file_unreadable", file=str(ready.path), error=f"{exc.__class__.__name__}: {exc.strerror}")
            except Exception:   # one bad file must never stop intake
                log.exception("identify_failed", file=str(ready.path))
        log.info("loop_ended", loop="identify", reason="stopping")

    def identify(self, ready: ReadyFile) -> str | None:
        """Record a complete file in the ledger and queue its content when there is work to do; return the
        content key when it was queued (or is already queued or running), else None (see identify.py)."""
        return self._identifier.identify(ready)

    @property
    def held(self) -> list[str]:
        """Paths held back by invalid folder settings."""
        return self._folder_holds.paths

    @property
    def held_unread(self) -> int:
        """How many held files were never identified (no content key, so no outcome in this run)."""
        return self._folder_holds.unread

    def _release_held(self, item: Held) -> None:
        """Hand a file in again whose folder settings are valid now (or queue its recorded content)."""
        if item.ready is not None:
            self.submit(item.ready)
        elif item.key is not None:
            entry = self.ctx.ledger.get(item.key)
            if entry is not None:
                self._enqueue(entry)

    def _enqueue(self, entry: Entry) -> bool:
        with self._lock:
            if entry.key in self._queued or entry.key in self._running:
                return False
            self._queued.add(entry.key)
        while not self.ctx.stop.is_set():
            try:
                self._work.put((entry.created_at, next(self._counter), entry.key), timeout=1.0)
                return True
            except queue.Full:
                continue
        with self._lock:
            self._queued.discard(entry.key)
        return False

    def _schedule_loop(self) -> None:
        """Queue failed entries whose retry time has come (the schedule lives in the ledger)."""
        stop = self.ctx.stop
        while not stop.is_set():
            due = self.ctx.ledger.next_due()
            now = self.ctx.clock()
            wait = 30.0 if due is None else min(30.0, max(0.5, due - now))
            if self._folder_holds:
                wait = min(wait, HELD_RECHECK_SECONDS)
            if sleep_unless(stop, self._folder_holds.added, wait):   # a newly held file cuts the wait short
                break
            self._folder_holds.added.clear()
            if self._folder_holds:
                self._folder_holds.recheck(lambda path: settings_for(self.ctx, path).valid, self._release_held)
            if self._paused is None:
                due = self.ctx.ledger.next_due()
                if due is not None and due <= self.ctx.clock():
                    self.enqueue_pending()
            breaker = self.ctx.client.breaker
            if breaker.is_open and breaker.next_probe_in() == 0.0 and self.ctx.client.probe():
                self.enqueue_pending()
        log.info("loop_ended", loop="schedule", reason="stopping")

    @property
    def budget_tick(self) -> float:
        """The budget loop looks at the clock at least this often (seconds)."""
        return self._budget_holds.tick

    @budget_tick.setter
    def budget_tick(self, seconds: float) -> None:
        self._budget_holds.tick = seconds

    def lift_budget_holds(self, why: str) -> int:
        """Let every file waiting for the budget go again (a new period, a larger budget); return how many."""
        return self._budget_holds.lift(why)

    def _work_loop(self) -> None:
        stop = self.ctx.stop
        while not stop.is_set():
            if self._paused is not None:
                self._resume.wait(1.0)
                continue
            try:
                _, _, key = self._work.get(timeout=1.0)
            except queue.Empty:
                continue
            if not key:
                continue     # a wake-up at stop
            with self._lock:
                self._queued.discard(key)
                self._running.add(key)
            self._changed()
            try:
                outcome = job.run(self.ctx, key)
            except Exception:   # a bug in one job must not kill the worker; the ledger keeps the state
                log.exception("job_crashed")
                outcome = retry_later(self.ctx, key, "internal error (see log)")
            with self._lock:
                self._running.discard(key)
                self._stats.outcomes[key] = outcome
                if outcome is Outcome.DONE:
                    self._stats.done += 1
                    self._count_done_today()
                elif outcome is Outcome.FAILED:
                    self._stats.failed += 1
                self._budget_holds.settle(key, waiting=outcome is Outcome.WAITING)
                if outcome in (Outcome.FAILED, Outcome.RETRY_LATER):
                    entry = self.ctx.ledger.get(key)
                    self._last_error = entry.reason if entry else None
            if outcome is Outcome.PAUSED:
                self._pause(key)
            elif outcome is Outcome.HELD:
                self._hold_content(key)
            self._changed()
        log.info("loop_ended", loop="worker", reason="stopping")

    def _hold_content(self, key: str) -> None:
        entry = self.ctx.ledger.get(key)
        source = next((Path(p) for p in entry.paths if Path(p).is_file()), None) if entry else None
        if source is not None:
            self._folder_holds.hold(source, settings_for(self.ctx, source).problems, key=key)

    def _pause(self, key: str) -> None:
        with self._lock:
            self._paused = "Gladia refused the API key (401)"
            self._resume.clear()
            self._queued.discard(key)
        if self.keys.refused():
            pause = self.keys.pause
            log.error("api_key_rejected", action="new work paused; files wait, none is failed for it. The key is "
                                                "checked again by itself at growing intervals, and at once when "
                                                "its file changes or on `systemctl reload transcribed` (SIGHUP)",
                      next_check_in=round(pause.next_check - self.ctx.clock(), 1) if pause else None)

    def _today(self) -> str:
        return time.strftime("%Y-%m-%d", time.localtime(self.ctx.clock()))

    def _count_done_today(self) -> None:
        """Called with the lock held: the day's count survives restarts (kept in the ledger's meta)."""
        today = self._today()
        count = self._done_today[1] + 1 if self._done_today[0] == today else 1
        self._done_today = (today, count)
        self.ctx.ledger.set_meta(f"done:{today}", str(count))

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()


def wait_all(pool: Pool, keys: Iterable[str], stop: threading.Event, poll: float = 0.2) -> None:
    """Block until every key has an outcome in this run, or stop is set."""
    pending = set(keys)
    while pending and not stop.is_set():
        pending = {k for k in pending if pool.outcome_of(k) is None}
        if pending:
            stop.wait(poll)
