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
from pathlib import Path

import structlog

from transcribed.fingerprint import fingerprint
from transcribed.inbox import ReadyFile
from transcribed.inbox.links import LinkError, is_link, link_key, read_link
from transcribed.ledger import Entry
from transcribed.pipeline import job
from transcribed.pipeline.budget import HOLD_KIND
from transcribed.pipeline.context import Context, Outcome, settings_for
from transcribed.pipeline.finish import publish_stored, retry_later
from transcribed.pipeline.keycheck import KeyCheck, clear_pause
from transcribed.pipeline.lister import JobLister
from transcribed.pipeline.settled import has_outputs_for

log = structlog.get_logger("transcribed.pool")

TERMINAL = ("done", "failed", "skipped")
HELD_RECHECK_SECONDS = 2.0     # files held by invalid folder settings: how often the settings are looked at


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


@dataclass(frozen=True)
class _Held:
    """A file held back by invalid folder settings: not read yet (`ready`), or recorded content (`key`)."""

    path: Path
    problems: tuple[str, ...]
    ready: ReadyFile | None
    key: str | None


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
        self._held: dict[str, _Held] = {}
        self._done_today = (self._today(), int(ctx.ledger.get_meta(f"done:{self._today()}") or 0))
        self._waiting = set(ctx.ledger.held(HOLD_KIND))
        self.budget_tick = 300.0     # the budget loop looks at the clock at least this often (seconds)
        self.keys = KeyCheck(lambda: self.ctx.client, ctx.ledger, ctx.stop, on_accepted=self.resume,
                             first=lambda: self.ctx.config.gladia.key_check_seconds, clock=ctx.clock, rng=ctx.rng)

    # ------------------------------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the identifier, the scheduler, the key check and the workers."""
        clear_pause(self.ctx.ledger)    # an earlier run may have stopped while paused
        self._spawn("identify", self._identify_loop)
        self._spawn("schedule", self._schedule_loop)
        if self.ctx.budget is not None:
            self._spawn("budget", self._budget_loop)
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
                            self.ctx.client.breaker.is_open, self._last_error, len(self._waiting))

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
        content key when it was queued (or is already queued or running), else None.

        A file whose folder settings (.transcribed.toml) are invalid is held, unread, until they are fixed.
        The content key is the file's fingerprint (a link file's: its normalised URL), plus a digest of the
        request parameters when its folder's settings change them (see folders.Effective.request_tag)."""
        ledger = self.ctx.ledger
        path = str(ready.path)
        key = ledger.lookup_stat(path, ready.device, ready.inode, ready.size, ready.mtime_ns)
        if key is not None:
            known = ledger.get(key)
            if known is not None and path in known.paths and known.state in ("done", "skipped") \
                    and (known.state == "skipped" or has_outputs_for(self.ctx.config, known.outputs, path)):
                return None   # the restart fast path: a stat and a read, no write, no hash
        effective = settings_for(self.ctx, ready.path)
        if not effective.valid:
            self._hold(ready.path, effective.problems, ready=ready)
            return None
        if key is None:
            key = self._key_of(ready)
            if key is None:
                return None
            key = effective.content_key(key)
        entry, created = ledger.record_seen(key, path, str(ready.root), ready.device, ready.inode, ready.size,
                                            ready.mtime_ns)
        if created:
            log.info("file_discovered", file=path, key=key[:19], bytes=ready.size)
        if entry.state == "done":
            if not has_outputs_for(self.ctx.config, entry.outputs, path):
                # A copy or a rename of finished content: outputs from the stored result, no new job.
                log.info("known_content_new_path", file=path, key=key[:19])
                publish_stored(self.ctx, key, [path])
            return None
        if entry.state == "skipped" or (entry.state == "failed" and entry.next_retry_at is None):
            return None
        if entry.state == "failed" and entry.next_retry_at is not None and entry.next_retry_at > self.ctx.clock():
            return None   # the scheduler queues it when due
        self._enqueue(entry)
        return key

    def _key_of(self, ready: ReadyFile) -> str | None:
        """The content key of a file (None: it changed while being read, or is a link file failed here)."""
        path = str(ready.path)
        if is_link(ready.path):
            try:
                return link_key(read_link(ready.path))
            except LinkError as exc:
                # Recorded under its bytes and failed for good, with the reason: `explain` and the log say it.
                key = fingerprint(ready.path)
                ledger = self.ctx.ledger
                entry, _ = ledger.record_seen(key, path, str(ready.root), ready.device, ready.inode, ready.size,
                                              ready.mtime_ns)
                if entry.state != "failed":
                    reason = f"not a usable link file: {exc}"
                    ledger.mark_failed(key, reason, retry_at=None)
                    log.error("file_failed", file=path, reason=reason)
                return None
        key = fingerprint(ready.path)
        with self._lock:
            self._stats.hashed += 1
        after = ready.path.stat()
        if (after.st_size, after.st_mtime_ns) != (ready.size, ready.mtime_ns):
            log.info("file_changed_while_hashing", file=path)   # the watcher hands it on again
            return None
        return key

    def _hold(self, path: Path, problems: tuple[str, ...], *, ready: ReadyFile | None = None,
              key: str | None = None) -> None:
        """Keep a file (not read yet: `ready`; or recorded content: `key`) back while its folder settings are
        invalid; said once per set of problems."""
        with self._lock:
            before = self._held.get(str(path))
            self._held[str(path)] = _Held(path, problems, ready, key)
        if before is None or before.problems != problems:
            log.warning("folder_settings_invalid", file=str(path), problems=list(problems),
                        action="the file waits until its folder's .transcribed.toml is fixed")

    @property
    def held(self) -> list[str]:
        """Paths held back by invalid folder settings."""
        with self._lock:
            return sorted(self._held)

    @property
    def held_unread(self) -> int:
        """How many held files were never identified (no content key, so no outcome in this run)."""
        with self._lock:
            return sum(1 for item in self._held.values() if item.key is None)

    def _recheck_held(self) -> None:
        """Hand held files in again whose folder settings are valid now (forget those that are gone)."""
        with self._lock:
            held = list(self._held.values())
        for item in held:
            if not item.path.exists():
                with self._lock:
                    self._held.pop(str(item.path), None)
                continue
            if not settings_for(self.ctx, item.path).valid:
                continue
            with self._lock:
                self._held.pop(str(item.path), None)
            log.info("folder_settings_fixed", file=str(item.path))
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
            if self._held:
                wait = min(wait, HELD_RECHECK_SECONDS)
            if stop.wait(wait):
                break
            if self._held:
                self._recheck_held()
            if self._paused is None:
                due = self.ctx.ledger.next_due()
                if due is not None and due <= self.ctx.clock():
                    self.enqueue_pending()
            breaker = self.ctx.client.breaker
            if breaker.is_open and breaker.next_probe_in() == 0.0 and self.ctx.client.probe():
                self.enqueue_pending()
        log.info("loop_ended", loop="schedule", reason="stopping")

    def lift_budget_holds(self, why: str) -> int:
        """Let every file waiting for the budget go again (a new period, a larger budget); return how many."""
        lifted = self.ctx.ledger.lift_holds(HOLD_KIND)
        with self._lock:
            self._waiting.clear()
        if lifted:
            log.info("budget_holds_lifted", files=lifted, why=why)
            self.enqueue_pending()
        return lifted

    def _budget_loop(self) -> None:
        """Sleep until the next period starts (a timer to the boundary, at most `budget_tick`), then let the
        files waiting for the budget go. The period is compared by its label, so a clock that jumps (DST,
        suspend, a test's clock) is handled the same way."""
        stop = self.ctx.stop
        budget = self.ctx.budget
        assert budget is not None
        labels = budget.labels()
        while not stop.wait(min(self.budget_tick, budget.seconds_to_boundary() + 0.05)):
            now = budget.labels()
            if now != labels:
                labels = now
                log.info("budget_period_started", day=now[0], month=now[1])
                self.lift_budget_holds("a new budget period started")
        log.info("loop_ended", loop="budget", reason="stopping")

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
                if outcome is Outcome.WAITING:
                    self._waiting.add(key)
                else:
                    self._waiting.discard(key)
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
            self._hold(source, settings_for(self.ctx, source).problems, key=key)

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
