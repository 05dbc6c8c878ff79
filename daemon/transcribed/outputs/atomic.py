"""Durable file operations for outputs: atomic writes, careful removal, directories that survive a crash.

Every file is written to a hidden temporary name in its final directory (the watcher ignores names that
start with "."), fsynced, renamed over the final name with `os.replace`, and the directory is fsynced:
a reader sees the old file or the new one, never half of one, even across a crash or a full disk. A
symbolic link is never followed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import stat
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "TEMPORARY_MARKER",
    "atomic_write",
    "ensure_directory",
    "file_digest",
    "fsync_directory",
    "remove_if_unchanged",
    "remove_stale_temporaries",
    "temporary_prefix",
]

TEMPORARY_MARKER = ".transcribed-tmp-"


def atomic_write(path: Path, data: bytes, *, mode: int | None = None) -> str:
    """Replace `path` with `data` atomically and durably; return the data's sha256 (hex).

    Permissions are `mode` when given, else 0o666 less the umask. Whatever is at `path` (a link too) is
    replaced, never followed: callers decide beforehand whether it may be. On any OSError the temporary
    file is removed before the error propagates.
    """
    directory = path.parent
    temporary = directory / (temporary_prefix(path.name) + secrets.token_hex(4))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    descriptor = os.open(temporary, flags, 0o666)
    renamed = False
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view) :]
            if mode is not None:
                os.fchmod(descriptor, mode)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        temporary.replace(path)
        renamed = True
    finally:
        if not renamed:
            with contextlib.suppress(OSError):
                temporary.unlink()
    fsync_directory(directory)
    return hashlib.sha256(data).hexdigest()


def remove_if_unchanged(path: Path, digest: str) -> bool:
    """Remove the regular file `path` when it still holds exactly the bytes whose sha256 is `digest` (what
    transcribed wrote); return True when it is gone (removed now, or already absent). A file edited since, a
    symbolic link or a directory is left alone (False)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return True
    if not stat.S_ISREG(info.st_mode) or file_digest(path) != digest:
        return False
    try:
        path.unlink()
    except FileNotFoundError:
        return True
    fsync_directory(path.parent)
    return True


def file_digest(path: Path) -> str | None:
    """The sha256 (hex) of what `path` holds, without following a symbolic link; None when it cannot be
    opened (absent, a link, no permission)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    digest = hashlib.sha256()
    with open(descriptor, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def temporary_prefix(name: str) -> str:
    """The hidden prefix of the temporary names used to write `name` (".<name>" + TEMPORARY_MARKER)."""
    # Truncated so that the temporary name stays within NAME_MAX whatever the final name's length.
    short = os.fsdecode(os.fsencode(name)[:200])
    return f".{short}{TEMPORARY_MARKER}"


def remove_stale_temporaries(directory: Path, names: Sequence[str]) -> None:
    """Remove from `directory` the temporaries a crash left behind for these final `names` (they are
    hidden, but take space)."""
    prefixes = tuple(temporary_prefix(name) for name in names)
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.startswith(prefixes) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    Path(entry.path).unlink()


def ensure_directory(directory: Path) -> None:
    """Create `directory` and its missing parents, each made durable in its parent (fsync), so that an
    output written inside is reachable after a crash."""
    missing: list[Path] = []
    current = directory
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
        fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make the entries of `directory` durable; a filesystem that cannot fsync a directory is let be."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    except OSError as exc:
        # Some filesystems (FUSE, network) cannot fsync a directory; the rename is as durable as they get.
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(descriptor)
