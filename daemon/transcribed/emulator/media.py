"""Media facts for the Gladia emulator: duration, channels and format of stored audio, and fetching.

Duration comes from the WAV header when the file is RIFF/WAVE, else from `ffprobe` when it is on PATH,
else it is estimated from the size at 16 kB/s (16 kHz 8-bit mono, a deliberately rough guess).
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import json
import shutil
import struct
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

CHUNK_BYTES = 64 * 1024
ESTIMATED_BYTES_PER_SECOND = 16_000
SYNTHETIC_SECONDS = 30.0
FETCH_TIMEOUT_SECONDS = 30.0
FFPROBE_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class AudioFacts:
    """What the emulator reports about a stored file."""

    duration: float
    channels: int
    extension: str


@dataclass(frozen=True)
class ReceivedFile:
    """Bytes that landed on disk: how many, and their sha256 (hex)."""

    size: int
    sha256: str


class FetchError(Exception):
    """An audio URL could not be fetched. `too_large` is True when it exceeded the size limit."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


class HashingWriter:
    """Writes bytes to a new file while counting them and computing their sha256."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "wb")  # noqa: SIM115 - closed by close() or abort()
        self._digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append `data` to the file."""
        self._file.write(data)
        self._digest.update(data)
        self.size += len(data)

    def close(self) -> ReceivedFile:
        """Close the file and return what was written."""
        self._file.close()
        return ReceivedFile(size=self.size, sha256=self._digest.hexdigest())

    def abort(self) -> None:
        """Close the file without caring about its content (the caller deletes it)."""
        self._file.close()


def probe(path: Path, filename: str) -> AudioFacts:
    """Given a stored file and its original name, return its duration, channel count and extension."""
    extension = sniff_extension(path, filename)
    facts = wav_facts(path)
    if facts is not None:
        return facts
    facts = _ffprobe_facts(path, extension)
    if facts is not None:
        return facts
    size = path.stat().st_size
    return AudioFacts(duration=round(size / ESTIMATED_BYTES_PER_SECOND, 6), channels=1, extension=extension)


def wav_facts(path: Path) -> AudioFacts | None:
    """Return the facts of a RIFF/WAVE file read from its header, or None when it is not one."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            size = path.stat().st_size
            channels = byte_rate = 0
            for _ in range(64):  # bounded: a hostile header cannot keep us walking chunks
                chunk = handle.read(8)
                if len(chunk) < 8:
                    return None
                name, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if name == b"fmt ":
                    fmt = handle.read(length + (length & 1))
                    if len(fmt) < 16:
                        return None
                    channels, _rate, byte_rate = struct.unpack("<HII", fmt[2:12])
                elif name == b"data":
                    if not byte_rate or not channels:
                        return None
                    available = size - handle.tell()
                    data_bytes = available if length == 0xFFFFFFFF else min(length, available)
                    return AudioFacts(duration=round(data_bytes / byte_rate, 6), channels=channels,
                                      extension="wav")
                else:
                    handle.seek(length + (length & 1), 1)
    except OSError:
        return None
    return None


def _ffprobe_facts(path: Path, extension: str) -> AudioFacts | None:
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        return None
    try:
        completed = subprocess.run(
            [ffprobe, "-v", "error", "-print_format", "json", "-show_entries",
             "format=duration:stream=codec_type,channels,duration", "--", str(path)],
            capture_output=True, timeout=FFPROBE_TIMEOUT_SECONDS, check=False,
        )
        if completed.returncode != 0:
            return None
        report = json.loads(completed.stdout or b"{}")
        audio = [stream for stream in report.get("streams", []) if stream.get("codec_type") == "audio"]
        if not audio:
            return None
        duration = report.get("format", {}).get("duration") or audio[0].get("duration")
        return AudioFacts(duration=round(float(duration), 6), channels=int(audio[0].get("channels") or 1),
                          extension=extension)
    except (OSError, subprocess.SubprocessError, ValueError, TypeError, AttributeError):
        return None


_MP4_FAMILY = ("mp4", "m4a", "m4v", "mov", "3gp", "3g2")
_MATROSKA_FAMILY = ("mkv", "webm")


def sniff_extension(path: Path, filename: str) -> str:
    """Return the format's usual extension from the first bytes, else from the filename, else "bin"."""
    suffix = Path(filename).suffix.lower().lstrip(".")
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        head = b""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "opus" if suffix == "opus" else "ogg"
    if head[:3] == b"ID3" or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "mp3"
    if head[:2] in (b"\xff\xf1", b"\xff\xf9"):
        return "aac"
    if head[4:8] == b"ftyp":
        return suffix if suffix in _MP4_FAMILY else ("mov" if head[8:10] == b"qt" else "mp4")
    if head[:4] == b"\x1aE\xdf\xa3":
        return suffix if suffix in _MATROSKA_FAMILY else "mkv"
    if suffix.isalnum() and len(suffix) <= 8:
        return suffix
    return "bin"


def write_silent_wav(path: Path, seconds: float, sample_rate: int = 16_000, channels: int = 1) -> ReceivedFile:
    """Write a silent 16-bit PCM WAV of `seconds` (sparse on disk); return its size and sha256."""
    data_bytes = int(seconds * sample_rate) * channels * 2
    header = b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * channels * 2,
                                    channels * 2, 16)
    header += b"data" + struct.pack("<I", data_bytes)
    with open(path, "wb") as handle:
        handle.write(header)
        handle.truncate(len(header) + data_bytes)
    digest = hashlib.sha256(header)
    zeros = bytes(CHUNK_BYTES)
    remaining = data_bytes
    while remaining:
        step = min(remaining, CHUNK_BYTES)
        digest.update(zeros[:step])
        remaining -= step
    return ReceivedFile(size=len(header) + data_bytes, sha256=digest.hexdigest())


def filename_from_url(url: str) -> str:
    """Return the last path segment of a URL (decoded), or "audio" when it has none."""
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1]).strip()
    return name or "audio"


def is_loopback_url(url: str) -> bool:
    """Return True for an http(s) URL whose host is localhost or a loopback address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # a redirect could lead off the loopback interface


def _opener() -> urllib.request.OpenerDirector:
    # An empty ProxyHandler: loopback traffic must never be sent to a proxy taken from the environment.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def fetch(url: str, destination: Path, limit: int) -> ReceivedFile:
    """Stream `url` (GET, no credentials) into `destination`; raise FetchError on any failure or when it
    is larger than `limit` bytes (the partial file is removed)."""
    writer = HashingWriter(destination)
    try:
        request = urllib.request.Request(url, headers={"Accept": "*/*"})  # noqa: S310 - http(s) only
        with _opener().open(request, timeout=FETCH_TIMEOUT_SECONDS) as response:
            if response.status != 200:
                raise FetchError(f"audio URL answered {response.status}")
            while chunk := response.read(CHUNK_BYTES):
                writer.write(chunk)
                if writer.size > limit:
                    raise FetchError("audio URL is larger than the upload limit", too_large=True)
        return writer.close()
    except (OSError, ValueError, http.client.HTTPException) as exc:
        writer.abort()
        destination.unlink(missing_ok=True)
        raise FetchError(f"audio URL could not be fetched: {exc.__class__.__name__}") from exc
    except FetchError:
        writer.abort()
        destination.unlink(missing_ok=True)
        raise
