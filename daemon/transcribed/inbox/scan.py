"""One stat-only pass over the inboxes (for `transcribed once`), and the compact version keys.

No watchdog here: this module is safe to import from code that must not pull in an observer.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import structlog

from transcribed.config import InboxConfig
from transcribed.inbox.filters import NameFilter
from transcribed.inbox.readiness import ReadyFile, settled_by_mtime
from transcribed.inbox.walk import Kind, Root, classify, join, version_key, walk

__all__ = ["scan", "version_key"]

log = structlog.get_logger(__name__)


def scan(config: InboxConfig, *, settled_before_ns: int | None,
         known: Mapping[str, Mapping[str, bytes]] | None = None) -> tuple[list[ReadyFile], list[Path]]:
    """Walk every inbox once and return (ready, still settling), each sorted by path.

    A media file counts as complete when its mtime is older than `settled_before_ns` (wall-clock ns;
    None: every file counts as complete); newer ones are returned as still settling. Names, folders,
    markers, symlinks and special files follow the same rules as the watcher; symlinks leading out of an
    inbox are logged (symlink_outside_inbox) and skipped. Unreadable folders are logged and skipped.
    Files in `known` (directory -> name -> version key) are left out while their version (from a stat of
    each: a rewrite in place keeps the name and the inode) is the same.
    """
    names = NameFilter(tuple(config.include), tuple(config.exclude))
    ready: list[ReadyFile] = []
    settling: list[Path] = []
    for index, path in enumerate(config.paths):
        root = Root.of(path, index)
        for listing in walk(root, recursive=config.recursive, names=names):
            if listing.error is not None:
                log.warning("scan_folder_unreadable", root=root.text, folder=listing.directory,
                            error=f"{listing.error.__class__.__name__}: {listing.error.strerror}")
                continue
            same = known.get(listing.directory) if known is not None else None
            for name, status in listing.files:
                if same is not None and same.get(name) == version_key(status):
                    continue
                file = join(listing.directory, name)
                if settled_by_mtime(status.st_mtime_ns, settled_before_ns):
                    ready.append(ReadyFile(Path(file), root.path, status.st_dev, status.st_ino,
                                           status.st_size, status.st_mtime_ns))
                else:
                    settling.append(Path(file))
            for name in listing.links:
                link = join(listing.directory, name)
                if classify(root, link, recursive=config.recursive, names=names).kind is Kind.LINK_OUTSIDE:
                    log.warning("symlink_outside_inbox", file=link, root=root.text)
    ready.sort(key=lambda item: os.fsencode(item.path))
    settling.sort(key=os.fsencode)
    return ready, settling
