"""Moving a finished source away (`output.done_directory`), never replacing what is already there."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from pathlib import Path

from transcribed.outputs.atomic import ensure_directory, fsync_directory, temporary_prefix

__all__ = ["move_source"]


def move_source(source: Path, inbox_root: Path, done_directory: Path) -> Path:
    """Move a finished source to `done_directory`, mirroring its place under `inbox_root`; return where
    it went. Never replaces a file there: a taken name becomes "name (1).ext", "name (2).ext", ...
    Works across filesystems (copy, fsync, then remove). Raise ValueError when the source is not under
    `inbox_root`, OSError when the filesystem refuses.
    """
    target_directory = done_directory / source.relative_to(inbox_root).parent
    ensure_directory(target_directory)
    try:
        target = _claim(source, target_directory, source.name)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK):
            raise
        target = _copy_across(source, target_directory)
    source.unlink()
    fsync_directory(target_directory)
    fsync_directory(source.parent)
    return target


def _numbered(name: str, number: int) -> str:
    if number == 0:
        return name
    path = Path(name)
    return f"{path.stem} ({number}){path.suffix}" if path.suffix else f"{name} ({number})"


def _claim(existing: Path, directory: Path, name: str) -> Path:
    """Hard-link `existing` under the first free numbered `name` in `directory` (never replacing)."""
    for number in range(1000):
        candidate = directory / _numbered(name, number)
        try:
            os.link(existing, candidate, follow_symlinks=False)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(errno.EEXIST, "no free name for the moved source", str(directory / name))


def _copy_across(source: Path, directory: Path) -> Path:
    temporary = directory / (temporary_prefix(source.name) + secrets.token_hex(4))
    try:
        with open(source, "rb") as reader, open(temporary, "xb") as writer:
            shutil.copyfileobj(reader, writer, 1 << 20)
            writer.flush()
            os.fsync(writer.fileno())
        shutil.copystat(source, temporary)
        try:
            return _claim(temporary, directory, source.name)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EMLINK):
                raise
            # No hard links on this filesystem: take the first free name, accepting a tiny race.
            for number in range(1000):
                candidate = directory / _numbered(source.name, number)
                if not os.path.lexists(candidate):
                    temporary.replace(candidate)
                    return candidate
            raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
