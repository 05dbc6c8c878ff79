"""Streaming multipart/form-data: one field of a request body written to a file as it arrives, hashed on the way.

`save_field(read, length, content_type, field, out)` reads exactly `length` bytes (at most) through `read`,
finds the part named `field` and writes its content to `out`, in 64 KiB steps: memory stays flat whatever
the size (Bazarr sends a whole film's PCM, 115 MB per hour). Other parts are read and dropped. Raise
BadBody (a one-line reason for a 400) for a body that is not multipart/form-data with that field.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

__all__ = ["BadBody", "Saved", "boundary_of", "save_field"]

CHUNK = 64 * 1024
MAX_HEADERS = 16 * 1024
_BOUNDARY = re.compile(r'boundary=(?:"([^"]{1,200})"|([^\s;"]{1,200}))', re.IGNORECASE)
_NAME = re.compile(r'[\s;]name="([^"]*)"', re.IGNORECASE)
_FILENAME = re.compile(r'filename="([^"]*)"', re.IGNORECASE)


class BadBody(ValueError):
    """The body is not the multipart form expected; str() says why, in one line."""


@dataclass(frozen=True)
class Saved:
    """The field written: its size, sha256 (hex) and the file name the client gave ("" when none)."""

    size: int
    sha256: str
    filename: str


def boundary_of(content_type: str | None) -> bytes:
    """The boundary of a multipart/form-data Content-Type; raise BadBody when it is not one."""
    text = content_type or ""
    if not text.lower().startswith("multipart/form-data"):
        raise BadBody("expected a multipart/form-data body (field audio_file)")
    match = _BOUNDARY.search(text)
    if match is None:
        raise BadBody("multipart/form-data without a boundary")
    return (match.group(1) or match.group(2)).encode("latin-1")


class _Stream:
    """At most `left` bytes through `read`, with a small look-ahead buffer."""

    def __init__(self, read: Callable[[int], bytes], length: int) -> None:
        self._read = read
        self.left = length
        self.buffer = bytearray()

    def fill(self) -> bool:
        """Read one more chunk into the buffer; False at the end of the body."""
        if self.left <= 0:
            return False
        chunk = self._read(min(CHUNK, self.left))
        if not chunk:
            raise BadBody("the body ended before Content-Length bytes arrived")
        self.left -= len(chunk)
        self.buffer += chunk
        return True

    def until(self, marker: bytes, limit: int) -> bytes:
        """Return the bytes before `marker` (consumed with it), looking at most `limit` bytes ahead."""
        while True:
            index = self.buffer.find(marker)
            if index >= 0:
                head = bytes(self.buffer[:index])
                del self.buffer[:index + len(marker)]
                return head
            if len(self.buffer) > limit or not self.fill():
                raise BadBody("malformed multipart body")

    def copy_until(self, marker: bytes, sink: Callable[[bytes], object]) -> None:
        """Pass everything before `marker` to `sink` (consuming the marker), holding at most a chunk."""
        keep = len(marker) - 1
        while True:
            index = self.buffer.find(marker)
            if index >= 0:
                if index:
                    sink(bytes(self.buffer[:index]))
                del self.buffer[:index + len(marker)]
                return
            if len(self.buffer) > keep:
                sink(bytes(self.buffer[:-keep] if keep else self.buffer))
                del self.buffer[:len(self.buffer) - keep]
            if not self.fill():
                raise BadBody("malformed multipart body: a part has no closing boundary")

    def drain(self) -> None:
        self.buffer.clear()
        while self.fill():
            self.buffer.clear()


class _Writer:
    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.digest.update(data)
        self.out.write(data)
        self.size += len(data)


def save_field(read: Callable[[int], bytes], length: int, content_type: str | None, field: str,
               out: BinaryIO) -> Saved:
    """Write the content of multipart field `field` to `out` (see the module's docstring)."""
    boundary = boundary_of(content_type)
    stream = _Stream(read, length)
    delimiter = b"\r\n--" + boundary
    stream.buffer += b"\r\n"          # the first boundary has no CRLF before it: make it look like the others
    stream.until(delimiter, MAX_HEADERS + len(delimiter))
    saved: Saved | None = None
    while True:
        after = stream.until(b"\r\n", 2 + MAX_HEADERS)
        if after.startswith(b"--"):
            break                        # the closing boundary
        while len(stream.buffer) < 2 and stream.fill():
            pass
        if stream.buffer.startswith(b"\r\n"):   # a part without headers
            del stream.buffer[:2]
            headers = ""
        else:
            headers = stream.until(b"\r\n\r\n", MAX_HEADERS).decode("utf-8", "replace")
        disposition = next((line for line in headers.split("\r\n")
                            if line.lower().startswith("content-disposition:")), "")
        name = _NAME.search(disposition)
        if saved is None and name is not None and name.group(1) == field:
            writer = _Writer(out)
            stream.copy_until(delimiter, writer.write)
            filename = _FILENAME.search(disposition)
            saved = Saved(writer.size, writer.digest.hexdigest(), filename.group(1) if filename else "")
        else:
            stream.copy_until(delimiter, lambda data: None)
    stream.drain()
    if saved is None:
        raise BadBody(f"the multipart body has no field {field!r}")
    return saved
