"""Looking at an inbox with lstat and directory listings only: no file is ever opened or read.

`classify` answers "what is at this path, and does it count?" for one path (an event, a due check);
`walk` lists a tree directory by directory for scans. Both never follow a symlink, skip FIFOs, sockets
and devices by their lstat type (so nothing can block), treat a directory named like a media file as a
directory, and skip a directory holding `.transcribed-ignore` with everything below it.

Paths are str as os.fsdecode gives them: undecodable bytes survive as lone surrogates, and a name may hold
a newline. Nothing here builds a log line.
"""

from __future__ import annotations

import enum
import os
import stat
import struct
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from transcribed.inbox.filters import IGNORE_MARKER, OUTPUT_SUFFIXES, UNSUPPORTED_EXTENSION, NameFilter

_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW
VERIFY_SLICES = 8   # a trusting walk lists and stats every file of one folder in this many, in turns
_VERSION = struct.Struct("=QQQq")
_INODE_OF_KEY = struct.Struct("=8xQ").unpack_from


def version_key(status: os.stat_result) -> bytes:
    """(device, inode, size, mtime_ns) packed into 32 bytes: exact, and about a third of the memory of a
    tuple of ints. Values beyond 64 bits (an mtime set far in the future) fall back to longer text."""
    try:
        return _VERSION.pack(status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)
    except struct.error:
        text = f"~{status.st_dev}:{status.st_ino}:{status.st_size}:{status.st_mtime_ns}"
        return text.ljust(33).encode()


def join(directory: str, name: str) -> str:
    """`directory`/`name` for str paths (the hot paths stay on str: no Path objects per file)."""
    return directory + name if directory.endswith("/") else f"{directory}/{name}"


@dataclass(frozen=True, slots=True)
class Root:
    """An inbox folder. `text` is the path as configured (made absolute); `real` has symlinks resolved
    and is what symlink targets are checked against."""

    path: Path
    text: str
    real: str
    index: int

    @classmethod
    def of(cls, path: Path, index: int) -> Root:
        text = os.path.abspath(os.fspath(path))  # noqa: PTH100 - as configured, links kept
        return cls(path, text, os.path.realpath(text), index)

    def relative(self, path: str) -> str | None:
        """`path` relative to the root with "/" separators, or None when it is not strictly below it."""
        prefix = self.text if self.text.endswith("/") else self.text + "/"
        if not path.startswith(prefix) or len(path) == len(prefix):
            return None
        return path[len(prefix):]

    def holds(self, real_path: str) -> bool:
        """True when a resolved path lies inside this root (the root itself included)."""
        return real_path == self.real or real_path.startswith(self.real.rstrip("/") + "/")


class Kind(enum.Enum):
    FILE = "file"                       # a regular file whose name counts; `stat` is set
    DIRECTORY = "directory"             # a directory the walk may enter
    LINK_INSIDE = "link_inside"         # a symlink into the inbox: its target is found on its own
    LINK_OUTSIDE = "link_outside"       # a symlink leading out of the inbox: never followed
    IGNORED = "ignored"                 # by name, by type (FIFO ...), or below an ignored folder
    GONE = "gone"                       # nothing there any more
    UNREADABLE = "unreadable"           # lstat failed for another reason (permissions, I/O error)


@dataclass(frozen=True, slots=True)
class Found:
    kind: Kind
    path: str
    stat: os.stat_result | None = None
    reason: str = ""


def _link_kind(root: Root, path: str) -> Kind:
    # realpath resolves with lstat/readlink only; a loop or a dangling link still yields a path.
    return Kind.LINK_INSIDE if root.holds(os.path.realpath(path)) else Kind.LINK_OUTSIDE


def classify(root: Root, path: str, *, recursive: bool, names: NameFilter) -> Found:
    """Return what `path` (absolute, str) is for the watcher, using lstat on it and its ancestors' markers.

    Never raises OSError: a vanished path is GONE, another failure UNREADABLE.
    """
    relative = root.relative(path)
    if relative is None:
        return Found(Kind.IGNORED, path, reason="not inside the inbox")
    parts = relative.split("/")
    if not recursive and len(parts) > 1:
        return Found(Kind.IGNORED, path, reason="in a subfolder and inbox.recursive is off")
    for depth, part in enumerate(parts[:-1]):
        reason = names.directory_reason(part, "/".join(parts[: depth + 1]) if names.uses_paths else None)
        if reason is not None:
            return Found(Kind.IGNORED, path, reason=f"below a skipped folder ({reason})")
    # A folder swapped for a symlink after it was watched must not lead the look outside the inbox.
    if len(parts) > 1 and not root.holds(os.path.realpath(path.rpartition("/")[0])):
        return Found(Kind.IGNORED, path, reason="reached through a symlink leading outside the inbox")
    directory = root.text
    for part in ["", *parts[:-1]]:
        directory = join(directory, part) if part else directory
        if os.path.lexists(join(directory, IGNORE_MARKER)):
            return Found(Kind.IGNORED, path, reason=f"below a folder holding {IGNORE_MARKER}")
    try:
        status = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return Found(Kind.GONE, path)
    except OSError as exc:
        return Found(Kind.UNREADABLE, path, reason=f"{exc.__class__.__name__}: {exc.strerror}")
    mode = status.st_mode
    name = parts[-1]
    if stat.S_ISDIR(mode):
        if not recursive:
            return Found(Kind.IGNORED, path, reason="a folder and inbox.recursive is off")
        reason = names.directory_reason(name, relative if names.uses_paths else None)
        if reason is not None:
            return Found(Kind.IGNORED, path, reason=reason)
        return Found(Kind.DIRECTORY, path, status)
    if stat.S_ISLNK(mode):
        return Found(_link_kind(root, path), path, status, reason="symlink")
    if not stat.S_ISREG(mode):
        return Found(Kind.IGNORED, path, reason="not a regular file (FIFO, socket or device)")
    reason = names.file_reason(name, relative if names.uses_paths else None)
    if reason is not None:
        return Found(Kind.IGNORED, path, reason=reason)
    return Found(Kind.FILE, path, status)


@dataclass(frozen=True, slots=True)
class Trust:
    """What a walk may take as unchanged, for rescans of large inboxes.

    `known` (directory -> name -> version key): a known file whose lstat gives the same key is unchanged.
    With slices > 1, a folder is in its turn when hash(folder) % slices == turn; outside its turn a known
    file whose directory entry still carries the same inode is taken as unchanged without an lstat (a
    listing gives each name's inode for free: a new, vanished, renamed or replaced-by-rename file is seen;
    only a rewrite in place is not, and that is what the file events report), and a folder recorded in
    `folders` whose own mtime and inode are unchanged is not even listed (adding, removing or renaming an
    entry changes a folder's mtime). Every folder is in its turn once in `slices` walks, and then every
    file in it is stat-ed. slices=1: everything is stat-ed, nothing skipped.

    `folders` (folder -> (mtime_ns, inode, subfolders)) is filled by the walk with the folders it listed
    that held only known, unchanged files (no symlink, no error) and whose mtime was more than
    RACY_SECONDS old when listed (so a change within the filesystem's timestamp granularity still shows).
    """

    known: Mapping[str, Mapping[str, bytes]]
    slices: int = 1
    turn: int = 0
    folders: dict[str, tuple[int, int, tuple[str, ...]]] | None = None

    def in_turn(self, directory: str) -> bool:
        return self.slices <= 1 or hash(directory) % self.slices == self.turn


RACY_SECONDS = 2.0


@dataclass(slots=True)
class Listing:
    """One directory of a walk: its accepted regular files with their lstat, the names of known files
    taken as unchanged without a stat (see Trust), its symlinks' names, and how many files it passed over
    for their extension (with the first name). `error` is set (and the lists empty) when the directory
    could not be listed."""

    directory: str
    files: list[tuple[str, os.stat_result]] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    subfolders: list[str] = field(default_factory=list)
    error: OSError | None = None
    skipped: bool = False   # not listed: unchanged since it was last listed (Trust.folders)
    passed_over: int = 0    # regular files not taken for their extension alone (filters.UNSUPPORTED_EXTENSION)
    passed_over_example: str = ""   # the first of them by name, when there are any


def walk(root: Root, start: str | None = None, *, recursive: bool, names: NameFilter,
         stop: threading.Event | None = None, trust: Trust | None = None) -> Iterator[Listing]:
    """Yield a Listing per directory from `start` (default: the root) down, depth first.

    Skipped folders (by name, by marker) are neither listed nor entered; a directory that cannot be
    listed yields a Listing with `error` set and is not entered. Stops early when `stop` is set.
    Each directory is opened once (O_NOFOLLOW: a folder swapped for a symlink is not followed) and its
    entries are lstat-ed relative to it, which is cheaper than by full path. With `trust`, known files
    taken as unchanged are listed in `unchanged`, not in `files`.
    """
    pending = [start or root.text]
    while pending:
        if stop is not None and stop.is_set():
            return
        listing = list_directory(root, pending.pop(), recursive=recursive, names=names, trust=trust)
        if listing is None:
            continue  # the folder holds IGNORE_MARKER
        pending.extend(listing.subfolders)
        yield listing


def list_directory(root: Root, directory: str, *, recursive: bool, names: NameFilter,
                   trust: Trust | None = None) -> Listing | None:
    """One directory of walk(): its Listing (`error` set when it cannot be listed, `skipped` when Trust let
    it be), or None when it holds IGNORE_MARKER. `subfolders` are the folders walk() would enter next."""
    in_turn = trust is None or trust.in_turn(directory)
    folders = trust.folders if trust is not None else None
    if not in_turn and folders is not None:
        recorded = folders.get(directory)
        if recorded is not None:
            try:
                now = os.lstat(directory)
            except OSError:
                now = None
            if now is not None and stat.S_ISDIR(now.st_mode) and (now.st_mtime_ns, now.st_ino) == recorded[:2]:
                return Listing(directory, subfolders=list(recorded[2]), skipped=True)
            del folders[directory]
    try:
        descriptor = os.open(directory, _DIRECTORY_FLAGS)
    except OSError as exc:
        return Listing(directory, error=exc)
    try:
        before = os.fstat(descriptor) if folders is not None else None
        listed_at = time.time_ns()
        listing = _list(root, directory, descriptor, recursive, names, trust, in_turn)
    except OSError as exc:
        return Listing(directory, error=exc)
    finally:
        os.close(descriptor)
    if (before is not None and folders is not None and listing is not None and not listing.files
            and not listing.links and before.st_mtime_ns < listed_at - int(RACY_SECONDS * 1e9)):
        folders[directory] = (before.st_mtime_ns, before.st_ino, tuple(listing.subfolders))
    return listing


def _list(root: Root, directory: str, descriptor: int, recursive: bool, names: NameFilter,
          trust: Trust | None, in_turn: bool) -> Listing | None:
    """One directory of walk(), in one pass over its entries (the hot loop of every scan); None when it
    holds IGNORE_MARKER."""
    listing = Listing(directory)
    files, unchanged, subfolders = listing.files, listing.unchanged, listing.subfolders
    file_reason = names.file_reason
    prefix = None
    if names.uses_paths:
        relative = root.relative(directory)
        prefix = "" if relative is None else relative + "/"
    known = trust.known.get(directory) if trust is not None else None
    by_inode = not in_turn
    nothing: dict[str, bytes] = {}
    lookup = (nothing if known is None else known).get
    inode_of, same, pack = _INODE_OF_KEY, unchanged.append, version_key
    with os.scandir(descriptor) as entries:
        for entry in entries:
            name = entry.name
            try:
                if entry.is_file(follow_symlinks=False):
                    if name.endswith(OUTPUT_SUFFIXES):
                        continue     # the transcripts beside each source: never media (filters.py)
                    key = lookup(name)
                    if key is not None:
                        if by_inode and inode_of(key)[0] == entry.inode():
                            same(name)
                            continue
                        status = entry.stat(follow_symlinks=False)
                        if pack(status) == key:
                            same(name)
                        elif file_reason(name, None if prefix is None else prefix + name) is None:
                            files.append((name, status))
                    elif (reason := file_reason(name, None if prefix is None else prefix + name)) is None:
                        files.append((name, entry.stat(follow_symlinks=False)))
                    elif reason == UNSUPPORTED_EXTENSION:
                        listing.passed_over += 1
                        if not listing.passed_over_example or name < listing.passed_over_example:
                            listing.passed_over_example = name
                    elif name == IGNORE_MARKER:
                        return None
                elif entry.is_dir(follow_symlinks=False):
                    if name == IGNORE_MARKER:
                        return None
                    if recursive and names.directory_reason(name, None if prefix is None else prefix + name) is None:
                        subfolders.append(join(directory, name))
                elif name == IGNORE_MARKER:
                    return None
                elif entry.is_symlink():
                    listing.links.append(name)
            except (FileNotFoundError, NotADirectoryError):
                continue  # removed since the listing: as if it had never been there
    return listing
