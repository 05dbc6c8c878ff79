"""The inbox watcher: every complete media file, handed on once per (path, version).

Threads, each with one job:
- observers (watchdog, one per root, native or polling): turn events into "look at this path" posts;
- the rescan thread: starts the observers, scans every root at start, then rescans every
  `rescan_seconds` with jitter, posting files it has not handed on in their current version. A rescan
  skips a folder whose mtime is unchanged since it last listed it, lists the others and stats what is new
  or was replaced (a new inode under a known name); every folder is listed and all its files stat-ed in
  its turn (one in VERIFY_SLICES per rescan), because a rewrite in place is what the file events report
  (walk.Trust). When events may have been lost (the kernel's event queue overflowed, or a root has no
  observer) the next rescan stats every file;
- the worker (settle.SettleWorker): owns all settle state; looks at posted paths (lstat), keeps a heap
  of due checks and sleeps in Event.wait until the earliest one or the next post, and calls on_ready /
  on_problem.

Nothing here opens a file: lstat and directory listings only (walk.py).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import structlog
from watchdog.observers.api import BaseObserver

from transcribed.config import InboxConfig
from transcribed.inbox import mounts, observers
from transcribed.inbox.filters import NameFilter
from transcribed.inbox.readiness import ReadyFile, SettlePolicy
from transcribed.inbox.scan import PassedOverLog, scan
from transcribed.inbox.settle import SettleWorker
from transcribed.inbox.walk import VERIFY_SLICES, Root, Trust, join, walk

__all__ = ["VERIFY_SLICES", "ReadyFile", "Watcher", "scan"]

log = structlog.get_logger(__name__)

_READ_MOUNT_TABLE = object()
_JOIN_SECONDS = 10.0


class Watcher:
    """Watch the inbox folders of `config` and call `on_ready(ReadyFile)` once per complete file version.

    `on_ready` and `on_problem(path, reason)` run on the watcher's worker thread: they must be cheap, and
    an exception from them is logged, never fatal. on_problem reports files that never settled within
    settle_timeout_seconds and symlinks leading out of the inbox (once per link).
    `clock` is monotonic seconds (injectable for tests). `known` seeds the record of files handed on
    (pipeline/settled.py: finished before this start); the watcher owns it from then on.
    `_observe=False` runs without observers, on
    rescans only (the "events lost" mode); `_mount_table` replaces /proc/self/mountinfo's text.
    """

    def __init__(self, config: InboxConfig, on_ready: Callable[[ReadyFile], None], *,
                 on_problem: Callable[[Path, str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, known: dict[str, dict[str, bytes]] | None = None,
                 _observe: bool = True, _mount_table: object = _READ_MOUNT_TABLE) -> None:
        self._config = config
        self._observe = _observe
        self._mount_table = _mount_table
        self._roots = tuple(Root.of(path, index) for index, path in enumerate(config.paths))
        self._names = NameFilter(tuple(config.include), tuple(config.exclude))
        self._random = random.Random()  # rescan jitter only
        self._stopping = threading.Event()
        self._scanned = threading.Event()
        # directory -> name -> version key of what was handed on; read by the rescan thread.
        self._known_lock = threading.Lock()
        self._known: dict[str, dict[str, bytes]] = {} if known is None else known
        self._rescan_lock = threading.Lock()
        self._rescan_now = threading.Event()   # events were lost: rescan at once, stat-ing every file
        # The start scan trusts `known` (files finished before this start: directory -> name -> version key)
        # by inode, so new files are seen at once; a full rescan follows it straight away, and finds what was
        # rewritten in place while nothing watched.
        self._events_lost = known is not None
        self._rescans = 0
        # folder -> (mtime_ns, inode, subfolders) when a rescan last listed it unchanged (walk.Trust)
        self._folders: dict[str, tuple[int, int, tuple[str, ...]]] = {}
        self._passed_over = PassedOverLog()    # one line per folder scan that passed files over by extension
        self._observer_lock = threading.Lock()
        self._observers: dict[int, BaseObserver] = {}
        self._modes: dict[Path, str] = {}
        self._reasons: dict[Path, str] = {}
        self._worker = SettleWorker(
            self._roots, self._names, SettlePolicy(config.settle_seconds, config.settle_timeout_seconds),
            recursive=config.recursive, known=self._known, known_lock=self._known_lock, stopping=self._stopping,
            clock=clock, on_ready=on_ready, on_problem=on_problem)
        self._threads: list[threading.Thread] = []

    # ---- public -----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker and the rescan thread (which starts observers, then scans); return at once.
        Raise RuntimeError when called twice."""
        if self._threads:
            raise RuntimeError("Watcher.start() called twice")
        if self._observe:
            observers.listen_for_lost_events(self.events_lost)
        self._threads = [
            threading.Thread(target=self._worker.run, name="transcribed-inbox-worker", daemon=True),
            threading.Thread(target=self._run_rescans, name="transcribed-inbox-rescan", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop observers and threads and wait for them; pending events and settling files are dropped.
        No callback runs after stop() returns (unless stop() is called from inside a callback)."""
        self._stopping.set()
        self._worker.wake()
        self._rescan_now.set()
        observers.events_lost_listeners.discard(self.events_lost)
        with self._observer_lock:
            running = list(self._observers.values())
            self._observers.clear()
        observers.stop_observers(running, timeout=_JOIN_SECONDS)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(_JOIN_SECONDS)
                if thread.is_alive():
                    log.warning("watcher_thread_stuck", thread=thread.name)

    def rescan(self, *, verify_all: bool = False, _start: bool = False) -> None:
        """List every folder under every root now and post the media files not handed on in their current
        version (new, replaced, or missed by events). Files already handed on are stat-ed again in turns
        (see VERIFY_SLICES), all of them with `verify_all`, after lost events, and for a root without an
        observer. Runs in the caller's thread; one at a time."""
        with self._rescan_lock:
            started = time.monotonic()
            if not _start:
                verify_all = verify_all or self._events_lost
                self._events_lost = False
            turn = self._rescans % VERIFY_SLICES
            self._rescans += 1
            modes = self.observer_modes()
            files = posted = 0
            for root in self._roots:
                watched = modes.get(root.path) in ("native", "polling")
                slices = 1 if verify_all or not watched else VERIFY_SLICES
                seen, new = self._rescan_root(root, Trust(self._known, slices, turn, self._folders))
                files += seen
                posted += new
                if self._stopping.is_set():
                    return
            log.debug("rescan_done", files=files, posted=posted, verify_all=verify_all,
                      seconds=round(time.monotonic() - started, 3))

    def events_lost(self) -> None:
        """The file events of some root were lost (the kernel's queue overflowed): rescan now, and stat
        every file in that rescan. Safe from any thread."""
        self._events_lost = True
        self._rescan_now.set()

    def observer_modes(self) -> dict[Path, str]:
        """Per root: "native", "polling", "off" (rescans only) or "none" (could not watch; retried at
        each rescan). Empty until the rescan thread has started the observers."""
        with self._observer_lock:
            return dict(self._modes)

    def observer_reasons(self) -> dict[Path, str]:
        """Per root: why it got the observer it has (the reason logged with watch_started)."""
        with self._observer_lock:
            return dict(self._reasons)

    def wait_started(self, timeout: float) -> bool:
        """Wait until observers run and the start scan has been posted; True when that happened."""
        return self._scanned.wait(timeout)

    # ---- observers --------------------------------------------------------------------------------------

    def _start_observers(self) -> None:
        """Start an observer for each root that has none running. Starting can be slow (a polling
        snapshot of a large share), so it happens outside the lock; stop() may run meanwhile."""
        mount_table: str | None = None
        if self._mount_table is _READ_MOUNT_TABLE:
            mount_table = mounts.read_mount_table()
        elif isinstance(self._mount_table, str):
            mount_table = self._mount_table
        for root in self._roots:
            with self._observer_lock:
                if self._stopping.is_set():
                    return
                current = self._observers.get(root.index)
                if current is not None and observers.is_running(current):
                    continue
                self._observers.pop(root.index, None)
            if current is not None:
                observers.stop_observers([current], timeout=_JOIN_SECONDS)
                log.warning("watch_lost", root=root.text)
            mode, reason = mounts.choose_observer(self._config.observer, root.real, mount_table)
            observer = self._try_observer(root, mode, reason)
            if observer is None and mode == "native" and self._config.observer == "auto":
                mode, reason = "polling", "native events unavailable for this folder"
                observer = self._try_observer(root, mode, reason)
            with self._observer_lock:
                if observer is not None and not self._stopping.is_set():
                    self._observers[root.index] = observer
                    self._modes[root.path], self._reasons[root.path] = mode, reason
                    log.info("watch_started", root=root.text, mode=mode, reason=reason,
                             recursive=self._config.recursive)
                    continue
                if observer is None:
                    self._modes[root.path], self._reasons[root.path] = "none", "could not watch"
            if observer is not None:  # stop() ran while it was starting
                observers.stop_observers([observer], timeout=_JOIN_SECONDS)
                return

    def _try_observer(self, root: Root, mode: str, reason: str) -> BaseObserver | None:
        try:
            return observers.start_observer(mode, root.text, root.index, self._worker.post,
                                            recursive=self._config.recursive,
                                            polling_interval=self._config.polling_interval_seconds)
        except OSError as exc:
            log.warning("watch_failed", root=root.text, mode=mode, reason=reason,
                        error=f"{exc.__class__.__name__}: {exc.strerror or exc}")
            return None

    # ---- rescans ----------------------------------------------------------------------------------------

    def _run_rescans(self) -> None:
        try:
            self._refresh_observers()
            self._guarded_rescan(start=True)
        finally:
            self._scanned.set()
        if self._events_lost:
            self._rescan_now.set()
        while True:
            self._rescan_now.wait(self._config.rescan_seconds * self._random.uniform(0.9, 1.1))
            self._rescan_now.clear()
            if self._stopping.is_set():
                break
            self._refresh_observers()
            self._guarded_rescan()
        log.debug("rescan_loop_ended", reason="stop requested")

    def _refresh_observers(self) -> None:
        """Start observers for roots that have none running (first start, folder recreated, share back)."""
        if not self._observe:
            with self._observer_lock:
                for root in self._roots:
                    self._modes[root.path], self._reasons[root.path] = "off", "observers off: rescans only"
            return
        try:
            self._start_observers()
        except Exception:
            log.exception("watch_start_failed")

    def _guarded_rescan(self, *, start: bool = False) -> None:
        try:
            self.rescan(_start=start)
        except Exception:
            log.exception("rescan_failed")

    def _rescan_root(self, root: Root, trust: Trust) -> tuple[int, int]:
        """Walk one root; post what is not known in its current version; forget what has gone.
        Return (media files seen, posted)."""
        seen = posted = 0
        visited: set[str] = set()
        post, known_all = self._worker.post, self._known
        for listing in walk(root, recursive=self._config.recursive, names=self._names, stop=self._stopping,
                            trust=trust):
            directory = listing.directory
            if listing.error is not None:
                event = "rescan_root_unreadable" if directory == root.text else "rescan_folder_unreadable"
                log.warning(event, root=root.text, folder=directory,
                            error=f"{listing.error.__class__.__name__}: {listing.error.strerror}")
                visited.add(directory)  # keep what is known there: it may come back
                continue
            visited.add(directory)
            known = known_all.get(directory)
            if listing.skipped:               # not listed: no entry added, removed or renamed since
                seen += len(known) if known is not None else 0
                continue
            self._passed_over.note(root.text, listing)
            hits = len(listing.unchanged)
            seen += hits
            for name, _ in listing.files:     # new or changed: what is the same is in listing.unchanged
                seen += 1
                post(join(directory, name), root.index, 0)
                posted += 1
            for name in listing.links:
                post(join(directory, name), root.index, 0)
            if known is not None and hits != len(known):
                present = {name for name, _ in listing.files}.union(listing.unchanged)
                self._forget(directory, [name for name in list(known) if name not in present])
        if not self._stopping.is_set():
            prefix = root.text.rstrip("/") + "/"
            for directory in [d for d in list(known_all) if d not in visited]:
                if (directory == root.text or directory.startswith(prefix)) and not os.path.lexists(directory):
                    self._forget(directory, None)
            for directory in [d for d in self._folders if d not in visited]:
                if directory == root.text or directory.startswith(prefix):
                    del self._folders[directory]   # no longer reached: gone, or below a changed folder
            self._passed_over.forget(root.text, visited)
        return seen, posted

    def _forget(self, directory: str, names: list[str] | None) -> None:
        """Drop known versions of vanished files (all of `directory` when names is None). A name is only
        dropped when lstat confirms it is gone, so a file handed on during the rescan is never forgotten."""
        with self._known_lock:
            known = self._known.get(directory)
            if known is None:
                return
            for name in list(known) if names is None else names:
                if not os.path.lexists(join(directory, name)):
                    known.pop(name, None)
            if not known:
                del self._known[directory]
