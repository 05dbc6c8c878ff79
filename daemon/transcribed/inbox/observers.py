"""watchdog, kept thin: one observer per inbox root whose events become "look at this path" hints.

Events carry no truth here: the watcher re-stats every path it is told about. They only say when to look,
and whether the look may take the fast path (a close-after-write or a move into the inbox) or should walk
a directory that just appeared.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import threading
from collections.abc import Callable

import structlog
from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserverVFS

log = structlog.get_logger(__name__)

_IN_ATTRIB = 0x00000004
FAST = 1        # a close-after-write or a move into the inbox: complete once a second look agrees
WALK = 2        # a directory appeared: list it and everything below it
METADATA = 4    # attributes changed (chmod, utime): does not end the fast path

Post = Callable[[str, int, int], None]
"""post(path, root index, flags): called from an observer thread; must be cheap and never raise."""

# Opened and close-without-write events are left out on purpose: the pipeline reading a file (upload,
# fingerprint) must not wake the watcher.
EVENT_TYPES: list[type[FileSystemEvent]] = [
    FileCreatedEvent, FileModifiedEvent, FileAttribEvent, FileDeletedEvent, FileClosedEvent,
    FileMovedEvent, DirCreatedEvent, DirMovedEvent,
]


def _text(path: bytes | str) -> str:
    return os.fsdecode(path) if path else ""


class EventRelay(FileSystemEventHandler):
    """Turns the watchdog events of one root into post(path, root index, flags) calls."""

    def __init__(self, root_index: int, post: Post) -> None:
        super().__init__()
        self._root_index = root_index
        self._post = post

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            self._relay(event)
        except Exception:
            log.exception("watch_event_failed", event=type(event).__name__)

    def _relay(self, event: FileSystemEvent) -> None:
        source, destination = _text(event.src_path), _text(event.dest_path)
        post, index = self._post, self._root_index
        if isinstance(event, FileClosedEvent):
            post(source, index, FAST)
        elif isinstance(event, FileMovedEvent):
            # An unmatched move has an empty side: "" -> dest came from outside, src -> "" left.
            if source:
                post(source, index, 0)
            if destination:
                post(destination, index, FAST)
        elif isinstance(event, FileAttribEvent):
            post(source, index, METADATA)
        elif isinstance(event, FileCreatedEvent | FileModifiedEvent | FileDeletedEvent):
            post(source, index, 0)
        elif isinstance(event, DirMovedEvent):
            if destination:
                post(destination, index, WALK | FAST)
        elif isinstance(event, DirCreatedEvent):
            post(source, index, WALK)


events_lost_listeners: set[Callable[[], None]] = set()
_listening = threading.Lock()


class _QueueOverflow(logging.Handler):
    """watchdog says that the kernel's inotify queue overflowed (events were lost) only in its log; this
    handler on watchdog's inotify logger turns that record into a call to every listener."""

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" not in str(record.msg).lower():
            log.warning("watchdog_warning", message=record.getMessage())
            return
        log.warning("watch_events_lost", reason="the kernel's inotify event queue overflowed",
                    next="a rescan now, with a stat of every file")
        for listener in list(events_lost_listeners):
            try:
                listener()
            except Exception:
                log.exception("events_lost_listener_failed")


def listen_for_lost_events(listener: Callable[[], None]) -> None:
    """Call `listener()` (from an observer thread) whenever watchdog reports lost events; remove it with
    events_lost_listeners.discard(listener)."""
    with _listening:
        inotify_log = logging.getLogger("watchdog.observers.inotify_c")
        if not any(isinstance(handler, _QueueOverflow) for handler in inotify_log.handlers):
            inotify_log.addHandler(_QueueOverflow(logging.WARNING))
            inotify_log.propagate = False   # reported by the handler, as one of our own log lines
            if inotify_log.getEffectiveLevel() > logging.WARNING:
                inotify_log.setLevel(logging.WARNING)
        events_lost_listeners.add(listener)


def _native_observer() -> BaseObserver:
    try:
        from watchdog.observers.inotify import InotifyObserver
    except ImportError:  # not Linux: the platform's own native observer
        from watchdog.observers import Observer
        return Observer()
    # Full events: a move from outside the watched tree arrives as a move (fast path), not a create.
    return InotifyObserver(generate_full_events=True)


def _polling_observer(interval: float) -> BaseObserver:
    # lstat, not stat: the snapshots must not follow a symlink out of the inbox (or round a loop).
    return PollingObserverVFS(os.lstat, os.scandir, polling_interval=interval)


def start_observer(mode: str, path: str, root_index: int, post: Post, *, recursive: bool,
                   polling_interval: float) -> BaseObserver:
    """Start and return a "native" or "polling" observer on `path`; raise OSError when it cannot watch
    (folder missing, inotify limits reached). Nothing is left running when it raises."""
    observer = _native_observer() if mode == "native" else _polling_observer(polling_interval)
    try:
        observer.schedule(EventRelay(root_index, post), path, recursive=recursive, event_filter=EVENT_TYPES)
        observer.start()
        if mode == "native" and not _inotify_has_room(path):
            # watchdog quietly skips a subfolder it cannot watch; a full watch table means some were skipped
            raise OSError(errno.ENOSPC, "the inotify watch limit (fs.inotify.max_user_watches) is reached")
    except Exception:
        stop_observers([observer], timeout=10.0)
        raise
    return observer


def _inotify_has_room(path: str) -> bool:
    """False when one more inotify watch cannot be added (ENOSPC): the user's watch limit is reached. True
    where inotify is not available to ask (not Linux), or for any other answer."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        init, add = libc.inotify_init1, libc.inotify_add_watch
    except (OSError, AttributeError):
        return True
    descriptor = init(os.O_CLOEXEC)
    if descriptor < 0:
        return True
    try:
        return add(descriptor, os.fsencode(path), _IN_ATTRIB) >= 0 or ctypes.get_errno() != errno.ENOSPC
    finally:
        os.close(descriptor)


def is_running(observer: BaseObserver) -> bool:
    """True while the observer and all its emitters run (an emitter stops when its folder is deleted)."""
    return observer.is_alive() and bool(observer.emitters) and all(
        emitter.is_alive() for emitter in observer.emitters)


def stop_observers(observers: list[BaseObserver], *, timeout: float) -> None:
    """Stop every observer, then wait for each (at most `timeout` seconds each)."""
    for observer in observers:
        observer.stop()
    for observer in observers:
        with contextlib.suppress(RuntimeError):  # never started
            observer.join(timeout)
