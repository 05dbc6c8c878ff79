"""Workers, queue, identification, drain and shutdown.

Files handed on by the watcher are identified (stat fast path, else a fingerprint of the bytes) and recorded
in the ledger; unfinished contents go to a bounded queue, oldest first; `workers.concurrency` workers carry
them through job.run. A copy or rename of finished content gets its outputs from the stored result, with no
new job. The first stop drains: no new files are taken and in-flight steps stop at a resumable point.
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

import structlog

from transcribed.fingerprint import fingerprint
from transcribed.inbox import ReadyFile
from transcribed.ledger import Entry
from transcribed.pipeline import job
from transcribed.pipeline.job import Context, Outcome
from transcribed.pipeline.lister import JobLister
from transcribed.pipeline.settled import has_outputs_for

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


@dataclass
class _Stats:
    done: int = 0
    failed: int = 0
    hashed: int = 0
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
        self._done_today = (self._today(), int(ctx.ledger.get_meta(f"done:{self._today()}") or 0))

    # ------------------------------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the identifier, the scheduler and the workers."""
        self._spawn("identify", self._identify_loop)
        self._spawn("schedule", self._schedule_loop)
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

    def resume(self) -> None:
        """Lift a pause (the key was fixed by a reload)."""
        with self._lock:
            self._paused = None
            self._resume.set()
            self._wake.notify_all()
        self.enqueue_pending()

    # ------------------------------------------------------------------------------------------ state

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(len(self._running), len(self._queued) + len(self._intake), self._stats.done,
                            self._done_today[1], self._stats.failed, self._paused,
                            self.ctx.client.breaker.is_open, self._last_error)

    def outcome_of(self, key: str) -> Outcome | None:
        with self._lock:
            return self._stats.outcomes.get(key)

    @property
    def hashed(self) -> int:
        return self._stats.hashed

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
        content key when it was queued (or is already queued or running), else None."""
        ledger = self.ctx.ledger
        path = str(ready.path)
        key = ledger.lookup_stat(path, ready.device, ready.inode, ready.size, ready.mtime_ns)
        if key is not None:
            known = ledger.get(key)
            if known is not None and path in known.paths and known.state in ("done", "skipped") \
                    and (known.state == "skipped" or has_outputs_for(self.ctx.config, known.outputs, path)):
                return None   # the restart fast path: a stat and a read, no write, no hash
        if key is None:
            key = fingerprint(ready.path)
            with self._lock:
                self._stats.hashed += 1
            after = ready.path.stat()
            if (after.st_size, after.st_mtime_ns) != (ready.size, ready.mtime_ns):
                log.info("file_changed_while_hashing", file=path)   # the watcher hands it on again
                return None
        entry, created = ledger.record_seen(key, path, str(ready.root), ready.device, ready.inode, ready.size,
                                            ready.mtime_ns)
        if created:
            log.info("file_discovered", file=path, key=key[:19], bytes=ready.size)
        if entry.state == "done":
            if not has_outputs_for(self.ctx.config, entry.outputs, path):
                # A copy or a rename of finished content: outputs from the stored result, no new job.
                log.info("known_content_new_path", file=path, key=key[:19])
                job.publish_stored(self.ctx, key, [path])
            return None
        if entry.state == "skipped" or (entry.state == "failed" and entry.next_retry_at is None):
            return None
        if entry.state == "failed" and entry.next_retry_at is not None and entry.next_retry_at > self.ctx.clock():
            return None   # the scheduler queues it when due
        self._enqueue(entry)
        return key

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
            if stop.wait(wait):
                break
            if self._paused is None:
                due = self.ctx.ledger.next_due()
                if due is not None and due <= self.ctx.clock():
                    self.enqueue_pending()
            breaker = self.ctx.client.breaker
            if breaker.is_open and breaker.next_probe_in() == 0.0 and self.ctx.client.probe():
                self.enqueue_pending()
        log.info("loop_ended", loop="schedule", reason="stopping")

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
                outcome = job.retry_later(self.ctx, key, "internal error (see log)")
            with self._lock:
                self._running.discard(key)
                self._stats.outcomes[key] = outcome
                if outcome is Outcome.DONE:
                    self._stats.done += 1
                    self._count_done_today()
                elif outcome is Outcome.FAILED:
                    self._stats.failed += 1
                if outcome in (Outcome.FAILED, Outcome.RETRY_LATER):
                    entry = self.ctx.ledger.get(key)
                    self._last_error = entry.reason if entry else None
            if outcome is Outcome.PAUSED:
                self._pause(key)
            self._changed()
        log.info("loop_ended", loop="worker", reason="stopping")

    def _pause(self, key: str) -> None:
        with self._lock:
            first = self._paused is None
            self._paused = "Gladia refused the API key (401)"
            self._resume.clear()
            self._queued.discard(key)
        if first:
            log.error("api_key_rejected", action="all new work paused until the key is fixed: update the key, then "
                                                "`systemctl reload transcribed` (SIGHUP) or restart")
            self.ctx.ledger.set_meta("paused_reason", self._paused or "")

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
