"""Private temp folders for extracts: created 0700, removed on close, leftovers of a crashed run swept.

A live workspace holds an exclusive flock on a `.lock` file inside it for as long as it is open. The kernel
drops the lock when the process dies however it dies (kill -9 included), so `sweep` can tell a leftover
from a folder another worker or another transcribed process is using right now: it removes a folder only
when it can take that lock itself. No PIDs, so no PID reuse to fool it.

Stdlib, errors and config only.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path
from types import TracebackType

from transcribed.config import MediaConfig

__all__ = ["PREFIX", "Workspace"]

PREFIX = "transcribed-media-"
LOCK_NAME = ".lock"
# A folder with no lock file is one being created this instant, or a crash inside that instant: only the
# latter is still without one a minute later.
_UNLOCKED_GRACE_SECONDS = 60.0


class Workspace:
    """A private temp folder (mode 0700) under media.temp_directory, or the system temp when it is unset.

    `path()` is the folder; `close()` (or leaving a `with` block, on success or failure) removes it and
    everything in it, and may be called more than once. Raise OSError when it cannot be created.
    """

    def __init__(self, config: MediaConfig, name: str) -> None:
        base = _base(config)
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        label = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "_" for c in name)[:40]
        self._path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{label}-", dir=base))
        self._lock: int | None = None
        try:
            self._lock = os.open(self._path / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                                 0o600)
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.close()
            raise

    def path(self) -> Path:
        """The folder: write extracts here."""
        return self._path

    def close(self) -> None:
        """Remove the folder and everything in it, then release the lock. Idempotent."""
        shutil.rmtree(self._path, ignore_errors=True)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace({os.fsdecode(self._path)!r})"

    @staticmethod
    def sweep(config: MediaConfig) -> int:
        """Remove the workspaces that crashed runs left behind (this user's, not in use); return how many.

        Safe to call while other workspaces are open, in this process or another: those are kept.
        """
        base = _base(config)
        removed = 0
        try:
            entries = list(os.scandir(base))
        except OSError:
            return 0
        for entry in entries:
            if not entry.name.startswith(PREFIX):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
                continue
            if _is_leftover(Path(entry.path), info.st_mtime):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed += 1
        return removed


def _base(config: MediaConfig) -> Path:
    return config.temp_directory if config.temp_directory is not None else Path(tempfile.gettempdir())


def _is_leftover(folder: Path, mtime: float) -> bool:
    try:
        lock = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return time.time() - mtime > _UNLOCKED_GRACE_SECONDS
    except OSError:
        return False
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:   # BlockingIOError: a live workspace holds it
        return False
    finally:
        # Closing drops the lock taken here; removing the folder happens after, and a new workspace never
        # reuses a name (mkdtemp), so nothing can adopt this folder in between.
        with contextlib.suppress(OSError):
            os.close(lock)
    return True
