"""One stat-only pass over the inboxes (for `transcribed once`): scan().

No watchdog here: this module is safe to import from code that must not pull in an observer.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from transcribed.config import InboxConfig
from transcribed.inbox.filters import UNSUPPORTED_EXTENSION, NameFilter
from transcribed.inbox.readiness import ReadyFile, settled_by_mtime
from transcribed.inbox.walk import Kind, Listing, Root, Trust, classify, join, list_directory, walk

__all__ = ["PassedOverLog", "log_passed_over", "scan"]

log = structlog.get_logger(__name__)


_SPLIT_FROM = 20_000   # known files from which a scan is split between two processes
_FRONTIER = 32         # folders listed breadth first before the split


@dataclass
class _Found:
    """What a scan found, in plain picklable values (a child process sends its part back as one)."""

    ready: list[tuple[str, int, int, int, int, int]] = field(default_factory=list)  # path, root, dev, ino, size, mtime
    settling: list[str] = field(default_factory=list)
    links: list[tuple[int, str]] = field(default_factory=list)
    unreadable: list[tuple[int, str, str]] = field(default_factory=list)             # root, folder, error
    passed_over: list[tuple[int, str, int, str]] = field(default_factory=list)       # root, folder, count, example


class _Scanner:
    """One scan's settings and steps, shared by this process and the child a split forks."""

    def __init__(self, config: InboxConfig, settled_before_ns: int | None,
                 known: Mapping[str, Mapping[str, bytes]] | None) -> None:
        self.config = config
        self.names = NameFilter(tuple(config.include), tuple(config.exclude))
        self.settled_before_ns = settled_before_ns
        self.trust = None if known is None else Trust(known)   # one slice: a stat of every file

    def take(self, root: Root, listing: Listing, found: _Found) -> None:
        directory = listing.directory
        if listing.error is not None:
            error = listing.error
            found.unreadable.append((root.index, directory, f"{error.__class__.__name__}: {error.strerror}"))
            return
        for name, status in listing.files:      # known files in the same version are in listing.unchanged
            file = join(directory, name)
            if settled_by_mtime(status.st_mtime_ns, self.settled_before_ns):
                found.ready.append((file, root.index, status.st_dev, status.st_ino, status.st_size,
                                    status.st_mtime_ns))
            else:
                found.settling.append(file)
        found.links.extend((root.index, join(directory, name)) for name in listing.links)
        if listing.passed_over:
            found.passed_over.append((root.index, directory, listing.passed_over, listing.passed_over_example))

    def walk(self, root: Root, starts: list[str], found: _Found) -> None:
        for start in starts:
            for listing in walk(root, start, recursive=self.config.recursive, names=self.names, trust=self.trust):
                self.take(root, listing, found)

    def split(self, root: Root, found: _Found) -> None:
        """List the top folders breadth first, then walk half of what is below them in a child process (a
        stat per file costs more than the listing: two cores halve it) and merge what it found."""
        frontier = [root.text]
        while frontier and len(frontier) < _FRONTIER:
            level, frontier = frontier, []
            for directory in level:
                listing = list_directory(root, directory, recursive=True, names=self.names, trust=self.trust)
                if listing is not None:
                    self.take(root, listing, found)
                    frontier.extend(listing.subfolders)
        theirs = frontier[1::2]
        incoming = _in_child(lambda: self._part(root, theirs)) if theirs else None
        self.walk(root, frontier[0::2], found)
        part = incoming() if incoming is not None else None
        if part is None:
            self.walk(root, theirs, found)     # the child failed: its half here
            return
        for name in ("ready", "settling", "links", "unreadable", "passed_over"):
            getattr(found, name).extend(getattr(part, name))

    def _part(self, root: Root, starts: list[str]) -> _Found:
        part = _Found()
        self.walk(root, starts, part)
        return part


def _in_child(work: Callable[[], _Found]) -> Callable[[], _Found | None] | None:
    """Run `work` in a forked child; return a function that waits for its result (None when it failed),
    or None when no child could be started. The child only lists, stats and writes to a pipe."""
    reading, writing = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(reading)
        os.close(writing)
        return None
    if pid == 0:  # the child: nothing here may log, raise or return into the caller's code
        code = 1
        try:
            os.close(reading)
            with os.fdopen(writing, "wb") as out:
                out.write(pickle.dumps(work(), protocol=pickle.HIGHEST_PROTOCOL))
            code = 0
        finally:
            os._exit(code)
    os.close(writing)

    def result() -> _Found | None:
        with os.fdopen(reading, "rb") as source:
            data = source.read()
        _, status = os.waitpid(pid, 0)
        if status != 0 or not data:
            return None
        part = pickle.loads(data)  # noqa: S301 - our own child's bytes, through a pipe only we hold
        return part if isinstance(part, _Found) else None

    return result


def _count(known: Mapping[str, Mapping[str, bytes]]) -> int:
    files = getattr(known, "files", None)    # pipeline/settled.py's Saved knows without decoding
    return files if isinstance(files, int) else sum(map(len, known.values()))


def log_passed_over(root: str, folder: str, count: int, example: str) -> None:
    """The one line a folder scan gives for the files it passed over for their extension."""
    log.info("files_passed_over", count=count, example=example, folder=folder, root=root,
             reason=UNSUPPORTED_EXTENSION, hint="to take them, add a glob to inbox.include")


class PassedOverLog:
    """For the watcher's rescans: one `files_passed_over` line per folder listing that passed files over for
    their extension, unless the last listing of that folder passed over the same (count, example), so an
    unchanged folder listed again in its turn does not repeat itself. Used by the rescan thread only."""

    def __init__(self) -> None:
        self._said: dict[str, tuple[int, str]] = {}

    def note(self, root: str, listing: Listing) -> None:
        """Given a folder just listed (not skipped, no error), log what it passed over if that is news."""
        directory = listing.directory
        if not listing.passed_over:
            self._said.pop(directory, None)
            return
        what = (listing.passed_over, listing.passed_over_example)
        if self._said.get(directory) != what:
            self._said[directory] = what
            log_passed_over(root, directory, *what)

    def forget(self, root: str, visited: set[str]) -> None:
        """Drop the folders under `root` that the last walk of it no longer reached."""
        prefix = root.rstrip("/") + "/"
        for directory in [d for d in self._said if d not in visited and (d == root or d.startswith(prefix))]:
            del self._said[directory]


def scan(config: InboxConfig, *, settled_before_ns: int | None, known: Mapping[str, Mapping[str, bytes]] | None = None,
         split_from: int = _SPLIT_FROM, report_passed_over: bool = True) -> tuple[list[ReadyFile], list[Path]]:
    """Walk every inbox once and return (ready, still settling), each sorted by path.

    A media file counts as complete when its mtime is older than `settled_before_ns` (wall-clock ns;
    None: every file counts as complete); newer ones are returned as still settling. Names, folders,
    markers, symlinks and special files follow the same rules as the watcher; symlinks leading out of an
    inbox are logged (symlink_outside_inbox) and skipped. Unreadable folders are logged and skipped.
    Files in `known` (directory -> name -> version key) are left out while their version (from a stat of
    each: a rewrite in place keeps the name and the inode) is the same. With `split_from` known files or
    more and more than one core, the walk of a recursive inbox is split between this process and a forked
    child. With `report_passed_over`, each folder holding files passed over for their extension alone gives
    one `files_passed_over` line (a count and an example name).
    """
    scanner = _Scanner(config, settled_before_ns, known)
    found = _Found()
    split = (config.recursive and known is not None and (os.cpu_count() or 1) > 1 and hasattr(os, "fork")
             and _count(known) >= split_from)
    roots = [Root.of(path, index) for index, path in enumerate(config.paths)]
    for root in roots:
        if split:
            scanner.split(root, found)
        else:
            scanner.walk(root, [root.text], found)
    for index, folder, error in found.unreadable:
        log.warning("scan_folder_unreadable", root=roots[index].text, folder=folder, error=error)
    if report_passed_over:
        for index, folder, count, example in sorted(found.passed_over, key=lambda item: item[1]):
            log_passed_over(roots[index].text, folder, count, example)
    for index, link in found.links:
        root = roots[index]
        if classify(root, link, recursive=config.recursive, names=scanner.names).kind is Kind.LINK_OUTSIDE:
            log.warning("symlink_outside_inbox", file=link, root=root.text)
    ready = [ReadyFile(Path(path), roots[index].path, device, inode, size, mtime_ns)
             for path, index, device, inode, size, mtime_ns in found.ready]
    ready.sort(key=lambda item: os.fsencode(item.path))
    settling = sorted((Path(path) for path in found.settling), key=os.fsencode)
    return ready, settling
