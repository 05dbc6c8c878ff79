"""Media preparation before upload: probe, decide (plan), extract the audio, split, stitch.

The pipeline calls, in order:

1. `find_tools(config)` once at start: the ffmpeg and ffprobe paths, or None for each one missing.
   `Workspace.sweep(config)` once at start: removes extracts a crashed run left behind.
2. `probe(path, config, ffprobe)` per file (skipped when ffprobe is missing): MediaError for a file with no
   audio or that cannot be decoded, before a byte is uploaded.
3. `plan(probe, config, is_video=..., ffmpeg_available=...)`: pure. "as_is" (upload the source), "extract"
   (upload its audio), or "split" (several parts, one job each); MediaError("needs ffmpeg: ...") when the
   file cannot be sent as it is and ffmpeg is missing.
4. For "split", `split_points(...)` with `plan.max_part_seconds`: the exact parts, cut at quiet points.
5. `extract(source, plan, config, ffmpeg, workspace.path(), part=...)` per upload, inside a `Workspace`;
   upload it under `upload_name(source, extract)`.
6. For "split", `stitch([(part, done job body), ...])`: one job body, as if Gladia had done it in one go.

Every decision is pure and tested with tables; every ffmpeg/ffprobe run goes through probe.run_tool
(argv lists, never a shell; `file:` paths; killed promptly when the stop event is set).

Stdlib, errors and config only.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from transcribed.config import MediaConfig
from transcribed.errors import MediaError
from transcribed.media.probe import (
    AudioStream,
    Probe,
    language_matches,
    media_argument,
    one_line,
    run_tool,
)
from transcribed.media.split import Part, even_parts

__all__ = ["CODECS", "Codec", "Plan", "choose_stream", "extract", "extract_command", "plan", "upload_name"]

MEGABYTE = 1_000_000          # Gladia's "1000 MB" read the strict way: never a byte over
SAMPLE_RATE = 16_000          # what Gladia converts everything to (API.md §8): more would be thrown away
# Container names ffprobe reports for the formats Gladia lists (API.md §8); others are extracted in auto mode.
GLADIA_CONTAINERS = frozenset({"mov", "mp4", "m4a", "3gp", "3g2", "matroska", "webm", "ogg", "wav", "mp3",
                               "flac", "aac", "avi", "flv", "asf", "ac3", "eac3"})


@dataclass(frozen=True)
class Codec:
    """How extracts are encoded: ffmpeg arguments, muxer, file suffix, and the bytes per second per channel
    used to estimate their size (None: from media.bitrate_kbps)."""

    arguments: tuple[str, ...]
    muxer: str
    suffix: str
    bytes_per_second: float | None


CODECS = {
    # voip: Opus tuned for speech intelligibility, which is what a transcriber needs. Constrained VBR keeps
    # the size near bitrate x duration (plain VBR ran 30 % over it on tonal audio), so the estimate holds.
    "opus": Codec(("-c:a", "libopus", "-application", "voip", "-vbr", "constrained"), "ogg", ".ogg", None),
    "aac": Codec(("-c:a", "aac"), "ipod", ".m4a", None),
    "mp3": Codec(("-c:a", "libmp3lame"), "mp3", ".mp3", None),
    "flac": Codec(("-c:a", "flac"), "flac", ".flac", SAMPLE_RATE * 2 * 0.75),  # a pessimistic FLAC ratio
    "wav": Codec(("-c:a", "pcm_s16le"), "wav", ".wav", SAMPLE_RATE * 2),
}


@dataclass(frozen=True)
class Plan:
    """What to upload for one file.

    `action`: "as_is" (the source itself), "extract" (its audio), "split" (`parts`, one job each; refine
    them with split_points(..., plan.max_part_seconds, ...)). `reason` says why, in one line. `stream` is
    the audio stream chosen (None when unknown). `channels` of the extract: 1 for mono, None to keep the
    source's (per-channel transcription).
    """

    action: Literal["as_is", "extract", "split"]
    reason: str
    parts: tuple[Part, ...] = ()
    stream: int | None = None
    channels: int | None = 1
    max_part_seconds: float | None = None


def plan(probe: Probe | None, config: MediaConfig, *, is_video: bool, ffmpeg_available: bool,
         per_channel: bool = False, unlisted: str | None = None) -> Plan:
    """Given what ffprobe found (None: ffprobe is missing), decide what to upload. Pure.

    `unlisted` is the file's extension (".webm") when it is not one Gladia lists (API.md §8), else None.
    Over media.max_duration_minutes, or over media.max_upload_mb as it is and (estimated from the bitrate
    and the duration) after extraction -> "split" into even parts within the limits. Videos, audio over
    media.extract_threshold_mb, formats or extensions Gladia does not list and files with several audio
    tracks -> "extract" in auto mode; everything in "always" mode. Without ffmpeg, what is within the
    limits is sent as it is. Raise MediaError("needs ffmpeg: <why>") when the file cannot be sent as it is and ffmpeg is
    missing, and MediaError when it cannot and media.extract_audio = "never".
    """
    channels: int | None = None if per_channel else 1
    if probe is None:
        if (is_video or unlisted) and ffmpeg_available and config.extract_audio != "never":
            what = "a video" if is_video else f"{unlisted!r} is not an extension Gladia lists"
            return Plan("extract", f"{what}: only its audio is sent (no ffprobe: limits not checked)",
                        channels=channels)
        return Plan("as_is", "sent as it is (no ffprobe: limits not checked)", channels=channels)
    stream, stream_note = choose_stream(probe.audio_streams, config.audio_stream)
    if per_channel:
        channels = stream.channels
    notes = [stream_note] if stream_note else []
    max_seconds = config.max_duration_minutes * 60.0
    max_bytes = config.max_upload_mb * MEGABYTE
    over = []
    if probe.duration is not None and probe.duration > max_seconds:
        over.append(f"{_minutes(probe.duration)} is over the {_minutes(max_seconds)} limit")
    if probe.size > max_bytes:
        over.append(f"{_megabytes(probe.size)} is over the {_megabytes(max_bytes)} upload limit")
    wanted = _reasons_to_extract(probe, config, stream, unlisted)
    if not over:
        if not wanted:
            return Plan("as_is", "; ".join(["within the limits", *notes]), stream=stream.index, channels=channels)
        if not ffmpeg_available:
            return Plan("as_is", "; ".join([f"sent as it is, ffmpeg is missing ({wanted[0]})", *notes]),
                        stream=stream.index, channels=channels)
        return _prepared(probe, config, stream, channels, [*wanted, *notes])
    if config.extract_audio == "never":
        raise MediaError(f'{"; ".join(over)}, and media.extract_audio = "never" forbids preparing it')
    if not ffmpeg_available:
        raise MediaError(f"needs ffmpeg: {'; '.join(over)}")
    return _prepared(probe, config, stream, channels, [*over, *notes])


def choose_stream(streams: Sequence[AudioStream], wanted: int | str) -> tuple[AudioStream, str]:
    """Given a file's audio streams (at least one) and media.audio_stream, return the stream to transcribe
    and a note when the wanted one is absent (then the default stream is used: the one marked default,
    else the first)."""
    default = next((s for s in streams if s.default), streams[0])
    if isinstance(wanted, int):
        found = next((s for s in streams if s.index == wanted), None)
        return (found, "") if found else (default, f"no audio stream #{wanted}: #{default.index} is used")
    if wanted:
        found = next((s for s in streams if language_matches(s.language, wanted)), None)
        return (found, "") if found else (default, f"no {wanted!r} audio track: #{default.index} is used")
    return default, ""


def _reasons_to_extract(probe: Probe, config: MediaConfig, stream: AudioStream, unlisted: str | None) -> list[str]:
    if config.extract_audio == "never":
        return []
    if config.extract_audio == "always":
        return ['media.extract_audio = "always"']
    reasons = []
    if probe.has_video:
        reasons.append("a video: only its audio is sent")
    if probe.size > config.extract_threshold_mb * MEGABYTE:
        reasons.append(f"{_megabytes(probe.size)} is over media.extract_threshold_mb")
    if probe.format_name and not set(probe.format_name.split(",")) & GLADIA_CONTAINERS:
        reasons.append(f"{probe.format_name!r} is not a format Gladia lists")
    elif unlisted:
        reasons.append(f"{unlisted!r} is not an extension Gladia lists")
    if len(probe.audio_streams) > 1:
        language = f" ({stream.language})" if stream.language else ""
        reasons.append(f"{len(probe.audio_streams)} audio tracks: only #{stream.index}{language} is sent")
    return reasons


def _prepared(probe: Probe, config: MediaConfig, stream: AudioStream, channels: int | None,
              reasons: list[str]) -> Plan:
    """An extract, or parts of one when it would still be over a limit (its size estimated from the codec)."""
    codec = CODECS[config.codec]
    per_channel = codec.bytes_per_second or config.bitrate_kbps * 1000 / 8
    # 5 % for container overhead; an unknown channel count is taken as stereo.
    per_second = per_channel * (channels or 2) * 1.05
    max_seconds = config.max_duration_minutes * 60.0
    limit = min(max_seconds, config.max_upload_mb * MEGABYTE / per_second)
    what = f"{config.codec} {'mono' if channels == 1 else 'all channels'}"
    if probe.duration is None:
        return Plan("extract", "; ".join([*reasons, "duration unknown", what]), stream=stream.index,
                    channels=channels)
    if probe.duration <= limit:
        return Plan("extract", "; ".join([*reasons, what]), stream=stream.index, channels=channels)
    parts = even_parts(probe.duration, limit)
    if limit < max_seconds:
        reasons.append(f"about {_megabytes(probe.duration * per_second)} as {config.codec}")
    return Plan("split", "; ".join([*reasons, f"{len(parts)} parts of about {_minutes(parts[0].duration)}", what]),
                parts=parts, stream=stream.index, channels=channels, max_part_seconds=limit)


def extract(source: Path, plan: Plan, config: MediaConfig, ffmpeg: str, workdir: Path, *,
            part: Part | None = None, stop: threading.Event | None = None) -> Path:
    """Write the audio of `source` (of one `part` of it, for a split plan) into `workdir`; return its path.

    The extract is `plan.stream` (or ffmpeg's default audio), at 16 kHz, mono unless `plan.channels` is
    None, encoded as media.codec, named after the source's stem (with ".partNN" for a part). It is written
    under a temp name and renamed when complete: on failure or stop nothing is left in `workdir`.
    Raise Stopped when `stop` is set (ffmpeg is killed at once), MediaError when the source cannot be
    decoded, OSError when the extract cannot be written (disk full) or the source is gone.
    """
    if plan.action == "split" and part is None:
        raise ValueError("a split plan is extracted one part at a time")
    codec = CODECS[config.codec]
    stem = _local_stem(source)
    label = f".part{part.index + 1:02d}" if part is not None else ""
    final = workdir / f"{stem}{label}{codec.suffix}"
    handle, temp_name = tempfile.mkstemp(prefix=".extract-", suffix=".tmp", dir=workdir)
    os.close(handle)
    temp = Path(temp_name)
    done = False
    try:
        status, _, err = run_tool(extract_command(source, plan, config, ffmpeg, temp, part=part), stop=stop)
        if status != 0:
            raise _extract_error(source, status, err, media_argument(source), media_argument(temp))
        temp.replace(final)
        done = True
        return final
    finally:
        if not done:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()


def extract_command(source: Path, plan: Plan, config: MediaConfig, ffmpeg: str, output: Path, *,
                    part: Part | None = None) -> list[str]:
    """The ffmpeg argv `extract` runs to write `output` (shown by the bench; never run through a shell)."""
    codec = CODECS[config.codec]
    argv = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    if part is not None:
        # Before -i: a fast seek, still exact since the audio is decoded from the preceding keyframe.
        argv += ["-ss", f"{part.start:.3f}", "-t", f"{part.duration:.3f}"]
    argv += ["-i", media_argument(source)]
    argv += ["-map", f"0:{plan.stream}"] if plan.stream is not None else ["-vn", "-sn", "-dn"]
    argv += ["-map_metadata", "-1", "-map_chapters", "-1"]
    if plan.channels == 1:
        argv += ["-ac", "1"]
    argv += ["-ar", str(SAMPLE_RATE), *codec.arguments]
    if codec.bytes_per_second is None:
        argv += ["-b:a", f"{config.bitrate_kbps * (plan.channels or 2)}k"]
    return [*argv, "-f", codec.muxer, media_argument(output)]


def _extract_error(source: Path, status: int, err: bytes, source_argument: str,
                   output_argument: str) -> Exception:
    text = err.decode("utf-8", "replace")
    line = one_line(err, source_argument, fallback=f"ffmpeg exited with {status}").replace(output_argument,
                                                                                          "output")
    if "No space left on device" in text:
        return OSError(errno.ENOSPC, "no space left on device for the extract")
    if output_argument in text:
        return OSError(errno.EIO, f"cannot write the extract: {line}")
    if not source.exists():
        return FileNotFoundError(errno.ENOENT, "the file is gone")
    return MediaError(f"cannot be decoded: {line}")


def upload_name(source: Path, prepared: Path) -> str:
    """The name an upload carries: "<source stem><prepared suffix>" ("film.mkv" prepared as an .ogg ->
    "film.ogg"), so Gladia's dashboard and the job's file.filename still name the recording. Bytes that
    are not UTF-8 become U+FFFD and control characters "_", so the name always fits a multipart header."""
    name = os.fsencode(source.stem).decode("utf-8", "replace") + prepared.suffix
    return "".join(c if c.isprintable() else "_" for c in name)


def _local_stem(source: Path) -> str:
    """The source's stem cut to 120 bytes, so that ".partNN.ogg" still fits a 255-byte file name."""
    raw = os.fsencode(source.stem)[:120]
    return os.fsdecode(raw) or "audio"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def _megabytes(size: float) -> str:
    return f"{size / MEGABYTE:.1f} MB"
