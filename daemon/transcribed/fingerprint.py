"""Content fingerprints: the ledger's key for a file's bytes ("sha256:<64 hex digits>").

Streaming: the file is read 1 MiB at a time into one reused buffer, never whole into memory. Nothing is
counted here; a caller that wants to know how many files it hashed counts its own calls.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from dataclasses import dataclass

from transcribed.errors import MediaError, TranscribedError

KEY_PREFIX = "sha256:"
CHUNK_SIZE = 1024 * 1024


class FileChangedError(TranscribedError):
    """The file's size or mtime changed while it was being read: the digest would describe no real content.

    Try again once the file has settled.
    """


class FingerprintCancelledError(TranscribedError):
    """The `stop` event was set while the file was being read."""


@dataclass(frozen=True)
class Fingerprint:
    """The key of a file's bytes and the identity (from fstat of the same open file) of what was read."""

    key: str
    size: int
    device: int
    inode: int
    mtime_ns: int


def is_key(value: str) -> bool:
    """Return True when `value` has the shape of a fingerprint key: "sha256:" and 64 lowercase hex digits."""
    digest = value.removeprefix(KEY_PREFIX)
    return (
        value.startswith(KEY_PREFIX)
        and len(digest) == 64
        and all(character in "0123456789abcdef" for character in digest)
    )


def fingerprint(path: str | os.PathLike[str]) -> str:
    """Given a path to a regular file, return "sha256:<hex>" of its bytes.

    Raise OSError when it cannot be opened or read, MediaError when it is not a regular file (a FIFO, a
    socket, a directory: never blocks on them), FileChangedError when it changed while being read.
    """
    return fingerprint_file(path).key


def fingerprint_file(path: str | os.PathLike[str], *, stop: threading.Event | None = None) -> Fingerprint:
    """Like `fingerprint`, but also return the (device, inode, size, mtime_ns) of the very file that was read.

    That stat comes from the open descriptor, so it describes the hashed bytes even if the path is
    replaced meanwhile; it is what the ledger's stat fast path should remember. When `stop` is set
    between two reads, raise FingerprintCancelledError.
    """
    # O_NONBLOCK: opening a FIFO for reading must not wait for a writer; it is refused just below.
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        before = os.fstat(descriptor)
        if not stat.S_ISREG(before.st_mode):
            raise MediaError(f"not a regular file: {os.fsdecode(path)!r}")
        digest = hashlib.sha256()
        buffer = bytearray(CHUNK_SIZE)
        view = memoryview(buffer)
        while True:
            if stop is not None and stop.is_set():
                raise FingerprintCancelledError(f"stopped while hashing {os.fsdecode(path)!r}")
            count = os.readv(descriptor, [buffer])
            if count == 0:
                break
            digest.update(view[:count])
        after = os.fstat(descriptor)
    finally:
        os.close(descriptor)
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise FileChangedError(f"file changed while being read: {os.fsdecode(path)!r}")
    return Fingerprint(
        key=KEY_PREFIX + digest.hexdigest(),
        size=before.st_size,
        device=before.st_dev,
        inode=before.st_ino,
        mtime_ns=before.st_mtime_ns,
    )
