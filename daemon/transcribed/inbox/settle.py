"""The watcher's worker: the settle bookkeeping between "look at this path" and "this file is complete".

Observers and rescans `post` paths (any thread); the worker thread (`run`) takes them in batches, lstats
each one (walk.classify), folds what it sees into the file's settle state (readiness.observe / decide),
keeps a heap of due checks and sleeps in Event.wait until the earliest one or the next post, and calls
on_ready / on_problem. It owns all settle state; the record of what was handed on (`known`) it shares
with the rescans, writing it under `known_lock`.

Nothing here opens a file: lstat and directory listings only (walk.py).
"""

from __future__ import annotations

import heapq
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog

from transcribed.inbox import observers
from transcribed.inbox.filters import NameFilter
from transcribed.inbox.readiness import ReadyFile, SettlePolicy, Settling, Verdict, decide, observe
from transcribed.inbox.walk import Kind, Root, classify, join, version_key, walk

__all__ = ["SettleWorker"]

log = structlog.get_logger(__name__)


class _Tracked:
    """A file on its way to complete (worker thread only)."""

    __slots__ = ("root_index", "scheduled", "state")

    def __init__(self, root_index: int, state: Settling) -> None:
        self.root_index = root_index
        self.state = state
        self.scheduled: float | None = None


class SettleWorker:
    """Settle what is posted and call `on_ready(ReadyFile)` once per complete file version.

    `post` is safe from any thread; `run` is the worker thread's body and returns once `stopping` is set
    (call `wake` after setting it). `on_ready` and `on_problem(path, reason)` run on the worker thread; an
    exception from them is logged, never fatal; neither runs once `stopping` is set. on_problem reports
    files that never settled within the policy's timeout and symlinks leading out of the inbox (once per
    link). `known` (directory -> name -> version key of what was handed on) is read freely and written
    under `known_lock`. `clock` is monotonic seconds.
    """

    def __init__(self, roots: Sequence[Root], names: NameFilter, policy: SettlePolicy, *, recursive: bool,
                 known: dict[str, dict[str, bytes]], known_lock: threading.Lock, stopping: threading.Event,
                 clock: Callable[[], float], on_ready: Callable[[ReadyFile], None],
                 on_problem: Callable[[Path, str], None] | None) -> None:
        self._roots = roots
        self._names = names
        self._policy = policy
        self._recursive = recursive
        self._known = known
        self._known_lock = known_lock
        self._stopping = stopping
        self._clock = clock
        self._on_ready = on_ready
        self._on_problem = on_problem
        self._wake = threading.Event()
        self._pending_lock = threading.Lock()
        self._pending: dict[str, tuple[int, int]] = {}
        # worker-thread state
        self._settling: dict[str, _Tracked] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._sequence = 0
        self._reported_links: set[str] = set()

    def post(self, path: str, root_index: int, flags: int) -> None:
        """Ask the worker to look at `path` (observers.Post: flags FAST, WALK, METADATA). Any thread."""
        with self._pending_lock:
            previous = self._pending.get(path)
            self._pending[path] = (root_index, flags | (previous[1] if previous else 0))
        self._wake.set()

    def wake(self) -> None:
        """Wake the worker at once (after `stopping` is set, so that `run` returns)."""
        self._wake.set()

    def run(self) -> None:
        """The worker thread: look at posted paths and due checks until `stopping` is set."""
        heap = self._heap
        while not self._stopping.is_set():
            timeout = max(0.0, heap[0][0] - self._clock()) if heap else None
            self._wake.wait(timeout)
            self._wake.clear()
            with self._pending_lock:
                pending, self._pending = self._pending, {}
            for path, (root_index, flags) in pending.items():
                if self._stopping.is_set():
                    break
                self._guarded_look(path, root_index, flags)
            while heap and heap[0][0] <= self._clock() and not self._stopping.is_set():
                due, _, path = heapq.heappop(heap)
                tracked = self._settling.get(path)
                if tracked is None or tracked.scheduled != due:
                    continue  # superseded by an earlier check, or no longer tracked
                tracked.scheduled = None
                self._guarded_look(path, tracked.root_index, 0)
        log.debug("watcher_worker_ended", reason="stopped")

    def _guarded_look(self, path: str, root_index: int, flags: int) -> None:
        try:
            self._look(path, root_index, flags)
        except Exception:
            log.exception("watch_look_failed", file=path)

    def _look(self, path: str, root_index: int, flags: int) -> None:
        root = self._roots[root_index]
        found = classify(root, path, recursive=self._recursive, names=self._names)
        kind = found.kind
        if kind is Kind.FILE and found.stat is not None:
            self._consider(path, root_index, found.stat, flags)
            return
        if self._settling.pop(path, None) is not None:
            log.debug("file_vanished" if kind is Kind.GONE else "file_ignored", file=path, reason=found.reason)
        if kind is Kind.GONE:
            self._reported_links.discard(path)
        elif kind is Kind.DIRECTORY:
            if flags & observers.WALK:
                self._walk_new_directory(root, path, flags & observers.FAST)
        elif kind is Kind.LINK_OUTSIDE:
            if path not in self._reported_links:
                self._reported_links.add(path)
                log.warning("symlink_outside_inbox", file=path, root=root.text)
                self._problem(path, "a symlink leading outside the inbox: not followed")
        elif kind is Kind.UNREADABLE:
            log.info("file_unreadable", file=path, reason=found.reason)
        elif flags:  # an event for an ignored name; rescans stay quiet about those
            log.debug("file_ignored", file=path, reason=found.reason)

    def _walk_new_directory(self, root: Root, path: str, fast: int) -> None:
        for listing in walk(root, path, recursive=True, names=self._names, stop=self._stopping):
            for name, status in listing.files:
                self._consider(join(listing.directory, name), root.index, status, fast)
            for name in listing.links:
                self._look(join(listing.directory, name), root.index, 0)

    def _consider(self, path: str, root_index: int, status: os.stat_result, flags: int) -> None:
        """Fold a fresh lstat of a media file into its settle state; hand it on, report it, or schedule."""
        directory, _, name = path.rpartition("/")
        directory = directory or "/"
        key = version_key(status)
        known = self._known.get(directory)
        if known is not None and known.get(name) == key:
            self._settling.pop(path, None)
            return
        now = self._clock()
        version = (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)
        tracked = self._settling.get(path)
        state = observe(tracked.state if tracked else None, version, now,
                        fast=bool(flags & observers.FAST), metadata_only=bool(flags & observers.METADATA))
        decision = decide(state, now, self._policy)
        if decision.verdict is Verdict.READY:
            self._settling.pop(path, None)
            self._hand_on(path, root_index, directory, name, key, state)
        elif decision.verdict is Verdict.TIMED_OUT:
            self._settling.pop(path, None)
            log.warning("file_never_settled", file=path, bytes=status.st_size,
                        waited_seconds=round(now - state.first_seen, 1))
            self._problem(path, f"still changing after {self._policy.timeout_seconds:g} s: not handed on")
        else:
            if tracked is None:
                tracked = self._settling[path] = _Tracked(root_index, state)
            tracked.state = state
            due = decision.due if decision.due is not None else now
            if tracked.scheduled is None or due < tracked.scheduled:
                tracked.scheduled = due
                self._sequence += 1
                heapq.heappush(self._heap, (due, self._sequence, path))

    def _hand_on(self, path: str, root_index: int, directory: str, name: str, key: bytes,
                 state: Settling) -> None:
        if self._stopping.is_set():
            return
        with self._known_lock:
            self._known.setdefault(directory, {})[name] = key
        device, inode, size, mtime_ns = state.version
        root = self._roots[root_index]
        log.info("file_ready", file=path, root=root.text, bytes=size,
                 path_taken="fast" if state.fast_since is not None and size > 0 else "settled")
        try:
            self._on_ready(ReadyFile(Path(path), root.path, device, inode, size, mtime_ns))
        except Exception:
            log.exception("on_ready_failed", file=path)

    def _problem(self, path: str, reason: str) -> None:
        if self._on_problem is None or self._stopping.is_set():
            return
        try:
            self._on_problem(Path(path), reason)
        except Exception:
            log.exception("on_problem_failed", file=path)
