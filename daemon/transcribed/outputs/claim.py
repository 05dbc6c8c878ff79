"""One lock per output folder, held while a source claims its whole output set.

A source's outputs are decided (plain names or alternate names), written and recorded as its own in one go
while its folder's lock is held, so two sources that want the same names (`talk.wav` and `talk.mp3`
finishing at the same moment) never interleave: each gets a complete set of its own, never a mix.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["FolderLocks"]


class FolderLocks:
    """Thread-safe: `hold(directory)` blocks while another thread holds the same folder. Within one process
    (the daemon holds the ledger's lock, so it is the only writer of outputs besides `transcribed render`)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[Path, threading.Lock] = {}

    @contextmanager
    def hold(self, directory: Path) -> Iterator[None]:
        """Hold the lock of `directory` for the duration of the block."""
        with self._guard:
            lock = self._locks.setdefault(directory, threading.Lock())
        with lock:
            yield
