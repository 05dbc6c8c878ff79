"""Media probing: what a file holds (ffprobe), and the one way this package runs ffmpeg tools.

`probe` runs ffprobe once per file and returns a `Probe`: duration, size, container, whether it carries
video, its audio streams, and its subtitle streams' languages. A file with no audio stream, or that
ffprobe cannot read, raises MediaError with a one-line reason, so the pipeline fails it before a byte is
uploaded.

Every tool runs through `run_tool`: an argv list (never a shell), stdin closed, its own session (a Ctrl-C
at the terminal reaches the daemon, which then stops the tool itself), killed promptly when the caller's
stop event is set. File names are passed as `file:<absolute path>`, so a name starting with "-" is never
read as an option and a name holding ":" is never read as a protocol.

Stdlib, errors and config only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transcribed.config import MediaConfig
from transcribed.errors import MediaError
from transcribed.languages import same_language

__all__ = [
    "AudioStream",
    "Probe",
    "Stopped",
    "find_tools",
    "language_matches",
    "media_argument",
    "one_line",
    "parse_probe",
    "probe",
    "run_tool",
]

# How often a running tool is checked against the stop event: short enough for a prompt shutdown.
_STOP_CHECK_SECONDS = 0.1


class Stopped(Exception):
    """The caller's stop event was set: the tool was killed, nothing was left behind; repeat the call later."""


@dataclass(frozen=True)
class AudioStream:
    """One audio stream. `index` is the stream number as ffprobe prints it (#0:N), over all stream types;
    `language` is the container's tag (None when absent or "und"); `default` is the default disposition."""

    index: int
    codec: str | None
    channels: int | None
    language: str | None
    default: bool = False


@dataclass(frozen=True)
class Probe:
    """What ffprobe found. `duration` (seconds) is None when the container does not say; `size` is bytes on
    disk; `has_video` ignores cover art (an attached picture in an mp3 or m4a is not a video);
    `subtitle_languages` lists the embedded subtitle streams' language tags, from the same ffprobe run."""

    duration: float | None
    size: int
    format_name: str | None
    has_video: bool
    audio_streams: tuple[AudioStream, ...]
    subtitle_languages: tuple[str | None, ...] = ()   # one per subtitle stream: its language tag, None untagged


def find_tools(config: MediaConfig) -> tuple[str | None, str | None]:
    """Return the resolved (ffmpeg, ffprobe) paths, each None when it cannot be found or run."""
    return shutil.which(config.ffmpeg), shutil.which(config.ffprobe)


def media_argument(path: Path) -> str:
    """The argument naming `path` to ffmpeg/ffprobe: `file:` and the absolute path (see module docstring)."""
    return "file:" + os.fsdecode(os.path.abspath(path))  # noqa: PTH100 - no symlink resolution wanted


def probe(path: Path, config: MediaConfig, ffprobe: str) -> Probe:
    """Given a media file, return what it holds.

    Raise MediaError("no audio stream") or MediaError("cannot be decoded: <ffprobe's reason>") (one line)
    when it cannot be transcribed; TimeoutError (an OSError: retry later) when ffprobe takes longer than
    media.probe_timeout_seconds; OSError when the file or ffprobe cannot be read or run.
    """
    size = path.stat().st_size
    known = wav_probe(path, size)
    if known is not None:
        return known
    argument = media_argument(path)
    argv = [ffprobe, "-hide_banner", "-loglevel", "error",
            "-show_entries", "format=duration,format_name:stream=index,codec_type,codec_name,channels,duration"
            ":stream_tags=language:stream_disposition=default,attached_pic",
            "-of", "json", argument]
    status, out, err = run_tool(argv, timeout=config.probe_timeout_seconds)
    if status != 0:
        if not path.exists():
            raise FileNotFoundError(f"the file is gone: {os.fsdecode(path)!r}")
        raise MediaError("cannot be decoded: " + one_line(err, argument, fallback=f"ffprobe exited with {status}"))
    try:
        data = json.loads(out.decode("utf-8", "replace"))
    except ValueError:
        raise MediaError("cannot be decoded: ffprobe gave no readable description") from None
    return parse_probe(data, size)


def wav_probe(path: Path, size: int) -> Probe | None:
    """A plain PCM WAV read from its header in Python (ffprobe costs ~40 ms of CPU a file, most of the time of
    a small recording); None for anything else or anything odd, which ffprobe then examines."""
    if path.suffix.lower() != ".wav":
        return None
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return None
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    offset, channels, byte_rate, data_size = 12, 0, 0, None
    while offset + 8 <= len(head):
        chunk, length = head[offset:offset + 4], int.from_bytes(head[offset + 4:offset + 8], "little")
        body = head[offset + 8:offset + 8 + length]
        if chunk == b"fmt " and len(body) >= 16:
            audio_format = int.from_bytes(body[0:2], "little")
            channels = int.from_bytes(body[2:4], "little")
            byte_rate = int.from_bytes(body[8:12], "little")
            if audio_format not in (1, 3, 0xFFFE):
                return None
        elif chunk == b"data":
            data_size = min(length, size - offset - 8)
            break
        offset += 8 + length + (length & 1)
    if not channels or not byte_rate or data_size is None or data_size <= 0:
        return None
    stream = AudioStream(index=0, codec="pcm", channels=channels, language=None, default=True)
    return Probe(duration=data_size / byte_rate, size=size, format_name="wav", has_video=False,
                 audio_streams=(stream,))


def parse_probe(data: object, size: int) -> Probe:
    """Given ffprobe's JSON (-show_entries as `probe` asks) and the file size, return the Probe.

    Raise MediaError when there is no audio stream, or when no audio stream has a codec ffmpeg knows.
    """
    root = _mapping(data)
    streams = [s for s in root.get("streams") or [] if isinstance(s, Mapping)]
    container = _mapping(root.get("format"))
    audio: list[AudioStream] = []
    has_video = False
    durations: list[float] = []
    subtitles: list[str | None] = []
    for stream in streams:
        disposition = _mapping(stream.get("disposition"))
        kind = stream.get("codec_type")
        if kind == "video" and not disposition.get("attached_pic"):
            has_video = True
        if kind == "subtitle":
            subtitles.append(_language(stream))
        if kind != "audio" or not isinstance(stream.get("index"), int):
            continue
        channels = stream.get("channels")
        codec = stream.get("codec_name")
        audio.append(AudioStream(
            index=stream["index"],
            codec=codec if isinstance(codec, str) and codec not in ("", "none") else None,
            channels=channels if isinstance(channels, int) and channels > 0 else None,
            language=_language(stream),
            default=bool(disposition.get("default")),
        ))
        seconds = _seconds(stream.get("duration"))
        if seconds is not None:
            durations.append(seconds)
    if not audio:
        raise MediaError("no audio stream")
    if all(stream.codec is None for stream in audio):
        raise MediaError("cannot be decoded: no decoder for its audio")
    duration = _seconds(container.get("duration"))
    if duration is None and durations:
        duration = max(durations)
    name = container.get("format_name")
    return Probe(duration=duration, size=size, format_name=name if isinstance(name, str) and name else None,
                 has_video=has_video, audio_streams=tuple(audio), subtitle_languages=tuple(subtitles))


def _language(stream: Mapping[str, Any]) -> str | None:
    """A stream's language tag, None when absent, empty or "und" (undetermined)."""
    language = _mapping(stream.get("tags")).get("language")
    return language if isinstance(language, str) and language not in ("", "und") else None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _seconds(value: object) -> float | None:
    try:
        seconds = float(value) if isinstance(value, str | int | float) and not isinstance(value, bool) else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 < seconds < float("inf") else None


def run_tool(argv: Sequence[str], *, stop: threading.Event | None = None,
             timeout: float | None = None) -> tuple[int, bytes, bytes]:
    """Run `argv` (never through a shell) and return (exit status, stdout, stderr).

    Raise Stopped when `stop` is set first and TimeoutError when `timeout` seconds pass first (the tool is
    killed and reaped either way); OSError when it cannot be started.
    """
    if stop is not None and stop.is_set():
        raise Stopped(f"stopped before running {Path(argv[0]).name}")
    deadline = None if timeout is None else time.monotonic() + timeout
    process = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, start_new_session=True)
    try:
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            wait = _STOP_CHECK_SECONDS if stop is not None else left
            if wait is not None and left is not None:
                wait = min(wait, left)
            try:
                out, err = process.communicate(timeout=wait)
                return process.returncode, out, err
            except subprocess.TimeoutExpired:
                if stop is not None and stop.is_set():
                    raise Stopped(f"stopped while running {Path(argv[0]).name}") from None
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"{Path(argv[0]).name} took longer than {timeout:g} s") from None
    finally:
        if process.returncode is None:
            process.kill()
            process.communicate()


def one_line(stderr: bytes, argument: str, *, fallback: str) -> str:
    """The tool's last error line, made safe for a one-line log: the file's own name (which may hold
    newlines or control characters) replaced by "input", control characters dropped, at most 200 chars."""
    text = stderr.decode("utf-8", "replace").replace(argument, "input")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return fallback
    line = lines[-1]
    line = line.removeprefix("input: ")
    line = "".join(c if c.isprintable() else " " for c in line)
    return line[:197] + "..." if len(line) > 200 else line


def language_matches(tag: str | None, wanted: str) -> bool:
    """True when a stream's language tag names the language `wanted` ("en" matches "eng", "fre" matches
    "fra"; a region such as "pt-BR" is ignored on both sides)."""
    return same_language(tag, wanted)
