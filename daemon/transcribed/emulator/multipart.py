"""Request bodies for the Gladia emulator, read as streams: Content-Length or chunked, and multipart.

Nothing here holds a whole body in memory: bodies are read in 64 KiB steps and the multipart scanner keeps
at most one step plus a delimiter's length, so a 1 GB upload costs the same memory as a 1 kB one.
"""

from __future__ import annotations

from collections.abc import Callable
from email.message import Message
from pathlib import Path
from typing import BinaryIO

from transcribed.emulator.media import CHUNK_BYTES, HashingWriter, ReceivedFile

MAX_CHUNK_LINE = 1024
MAX_PART_HEADER_BYTES = 16 * 1024


class BodyTooLarge(Exception):
    """The body (or the uploaded part) went over the size limit."""


class MalformedBody(Exception):
    """The body is not what its headers announced (bad chunk framing, broken multipart, early EOF)."""


class RequestBody:
    """One request's body, read from the connection's buffered stream.

    Given the announced Content-Length (None when absent) or chunked framing, `read` returns successive
    pieces and b"" at the end. Reading more than `limit` bytes raises BodyTooLarge; a connection that ends
    early or bad chunk framing raises MalformedBody. `before_first_read` runs once, before the first byte
    is read (the place to send "100 Continue").
    """

    def __init__(self, stream: BinaryIO, *, length: int | None, chunked: bool, limit: int,
                 before_first_read: Callable[[], None] | None = None) -> None:
        self._stream = stream
        self._before_first_read = before_first_read
        self._chunked = chunked
        self._remaining = 0 if chunked else (length or 0)
        self._limit = limit
        self._chunk_left = 0
        self.bytes_read = 0
        self.finished = not chunked and not length

    def read(self, size: int = CHUNK_BYTES) -> bytes:
        """Return up to `size` bytes of the body, or b"" when it is finished."""
        if self.finished:
            return b""
        if self._before_first_read is not None:
            self._before_first_read()
            self._before_first_read = None
        data = self._read_chunked(size) if self._chunked else self._read_sized(size)
        self.bytes_read += len(data)
        if self.bytes_read > self._limit:
            raise BodyTooLarge
        return data

    def _read_sized(self, size: int) -> bytes:
        data = self._stream.read(min(size, self._remaining))
        if not data:
            raise MalformedBody("connection closed before the end of the body")
        self._remaining -= len(data)
        self.finished = self._remaining == 0
        return data

    def _read_chunked(self, size: int) -> bytes:
        if self._chunk_left == 0:
            line = self._stream.readline(MAX_CHUNK_LINE)
            try:
                self._chunk_left = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise MalformedBody("bad chunk size line") from None
            if self._chunk_left < 0:
                raise MalformedBody("bad chunk size line")
            if self._chunk_left == 0:
                self._skip_trailers()
                self.finished = True
                return b""
        data = self._stream.read(min(size, self._chunk_left))
        if not data:
            raise MalformedBody("connection closed inside a chunk")
        self._chunk_left -= len(data)
        if self._chunk_left == 0 and self._stream.read(2) != b"\r\n":
            raise MalformedBody("chunk not followed by CRLF")
        return data

    def _skip_trailers(self) -> None:
        for _ in range(64):
            line = self._stream.readline(MAX_CHUNK_LINE)
            if line in (b"\r\n", b"\n", b""):
                return
        raise MalformedBody("too many trailer lines")

    def discard(self, most: int) -> bool:
        """Read and drop the rest of the body if it is at most `most` more bytes; return True when the
        body is now finished (the connection can be kept alive)."""
        if not self._chunked and self._remaining > most:
            return False
        budget = most
        try:
            while not self.finished and budget >= 0:
                budget -= len(self.read(CHUNK_BYTES))
        except (BodyTooLarge, MalformedBody, OSError):
            return False
        return self.finished


def boundary_of(content_type: str) -> bytes | None:
    """Return the multipart boundary named in a Content-Type header value, or None."""
    message = Message()
    message["content-type"] = content_type
    boundary = message.get_param("boundary")
    if not isinstance(boundary, str) or not boundary or len(boundary) > 200:
        return None
    return boundary.encode("latin-1", "replace")


class _Scanner:
    """A window over the body used to find multipart delimiters without buffering the body."""

    def __init__(self, body: RequestBody, delimiter: bytes) -> None:
        self._body = body
        self.delimiter = delimiter
        # The body is read as if it began with CRLF, so the first delimiter looks like every other one.
        self.buffer = bytearray(b"\r\n")

    def fill(self) -> bool:
        data = self._body.read(CHUNK_BYTES)
        self.buffer += data
        return bool(data)

    def need(self, count: int) -> bool:
        while len(self.buffer) < count:
            if not self.fill():
                return False
        return True

    def pass_part(self, sink: HashingWriter | None) -> bool:
        """Move part data to `sink` (or drop it) up to the next delimiter, consumed; False at EOF."""
        keep = len(self.delimiter) - 1
        while True:
            found = self.buffer.find(self.delimiter)
            if found >= 0:
                if sink is not None:
                    sink.write(memoryview(self.buffer)[:found])
                del self.buffer[: found + len(self.delimiter)]
                return True
            if len(self.buffer) > keep:
                cut = len(self.buffer) - keep
                if sink is not None:
                    sink.write(memoryview(self.buffer)[:cut])
                del self.buffer[:cut]
            if not self.fill():
                return False

    def part_headers(self) -> Message | None:
        """After a delimiter: return the next part's headers, or None at the closing delimiter."""
        if not self.need(2):
            raise MalformedBody("multipart body ends after a delimiter")
        if self.buffer[:2] == b"--":
            return None
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            if len(self.buffer) > MAX_PART_HEADER_BYTES or not self.fill():
                raise MalformedBody("multipart part headers are missing or too long")
        raw = bytes(self.buffer[:end]).decode("utf-8", "replace")
        del self.buffer[: end + 4]
        headers = Message()
        # The first line is the rest of the delimiter line (transport padding), then the part's headers.
        for line in raw.split("\r\n")[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip()] = value.strip()
        return headers


def receive_audio_part(body: RequestBody, boundary: bytes, destination: Path,
                       part_limit: int) -> tuple[str, ReceivedFile] | None:
    """Stream the multipart part named "audio" into `destination`; return (its filename, what was
    written), or None when the body has no such part. Other parts are read and dropped. Raise
    MalformedBody for a broken body and BodyTooLarge when the part exceeds `part_limit` bytes; the
    destination file is removed in every failure case."""
    scanner = _Scanner(body, b"\r\n--" + boundary)
    found: tuple[str, ReceivedFile] | None = None
    if not scanner.pass_part(None):
        raise MalformedBody("no multipart delimiter in the body")
    while (headers := scanner.part_headers()) is not None:
        name = headers.get_param("name", header="content-disposition")
        if name == "audio" and found is None:
            writer = HashingWriter(destination)
            complete = False
            try:
                complete = scanner.pass_part(writer)
            finally:
                received = writer.close()
                if not complete:
                    destination.unlink(missing_ok=True)
            if not complete:
                raise MalformedBody("multipart body ends inside the audio part")
            if received.size > part_limit:
                destination.unlink(missing_ok=True)
                raise BodyTooLarge
            filename = headers.get_filename() or "audio"
            found = (Path(filename.replace("\\", "/")).name or "audio", received)
        elif not scanner.pass_part(None):
            raise MalformedBody("multipart body ends inside a part")
    body.discard(CHUNK_BYTES)  # the epilogue, if any
    return found
