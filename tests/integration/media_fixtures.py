"""Media fixtures made with the real ffmpeg into a temp folder (never committed), kept short."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

FFMPEG = shutil.which("ffmpeg")
FFPROBE = shutil.which("ffprobe")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None or FFPROBE is None, reason="ffmpeg and ffprobe are not installed")

# "Speech": a 220 Hz voice with a syllable-rate tremble, 3 s talking then a 1 s pause, every 4 s.
SPEECH = "aevalsrc='0.4*sin(2*PI*220*t)*(0.6+0.4*sin(2*PI*4*t))*lt(mod(t\\,4)\\,3)':s=16000:d={seconds}"
# The 140-minute recording: a tone for 50 s, then 10 s of silence, every minute.
MINUTE = "aevalsrc='0.3*sin(2*PI*440*t)*lt(mod(t\\,60)\\,50)':s=8000:d=60"


def ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly; fail the test with its message if it fails."""
    assert FFMPEG is not None
    done = subprocess.run([FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
                          capture_output=True, check=False)
    if done.returncode != 0:
        raise AssertionError(done.stderr.decode(errors="replace"))


def out(path: Path) -> str:
    return "file:" + str(path)


def speech(path: Path, seconds: float, *codec: str) -> Path:
    ffmpeg("-f", "lavfi", "-i", SPEECH.format(seconds=seconds), *(codec or ("-c:a", "pcm_s16le")), out(path))
    return path


def video(path: Path, seconds: float) -> Path:
    ffmpeg("-f", "lavfi", "-i", f"testsrc=size=320x240:rate=10:duration={seconds}",
           "-f", "lavfi", "-i", SPEECH.format(seconds=seconds),
           "-c:v", "mpeg4", "-c:a", "aac", "-ac", "2", "-shortest", out(path))
    return path


def two_tracks(path: Path) -> Path:
    """English for 4 s, French for 2 s: an extract's duration tells which track it holds."""
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=5:duration=4",
           "-f", "lavfi", "-i", SPEECH.format(seconds=4), "-f", "lavfi", "-i", SPEECH.format(seconds=2),
           "-map", "0", "-map", "1", "-map", "2", "-metadata:s:a:0", "language=eng",
           "-metadata:s:a:1", "language=fre", "-c:v", "mpeg4", "-c:a", "aac", out(path))
    return path


def silent_video(path: Path) -> Path:
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=5:duration=2", "-c:v", "mpeg4", out(path))
    return path


def truncated(path: Path) -> Path:
    """An mp4 cut in half, as a copy interrupted mid-way leaves it (its index is at the end)."""
    video(path, 4)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def long_recording(path: Path, minutes: int = 140) -> Path:
    """`minutes` of tone and silence at 8 kHz, 6 kb/s Opus: one minute encoded, then copied `minutes` times
    (about a second on two cores, about 6 MB)."""
    minute = path.with_name("minute.ogg")
    ffmpeg("-f", "lavfi", "-i", MINUTE, "-c:a", "libopus", "-b:a", "6k", out(minute))
    ffmpeg("-stream_loop", str(minutes - 1), "-i", out(minute), "-c", "copy", out(path))
    return path


def duration_of(path: Path) -> float:
    assert FFPROBE is not None
    done = subprocess.run([FFPROBE, "-v", "error", "-show_entries", "format=duration:stream=codec_type,channels",
                           "-of", "json", out(path)], capture_output=True, check=True)
    return float(json.loads(done.stdout)["format"]["duration"])


def streams_of(path: Path) -> list[dict[str, object]]:
    assert FFPROBE is not None
    done = subprocess.run([FFPROBE, "-v", "error", "-show_entries", "stream=codec_type,codec_name,channels,sample_rate",
                           "-of", "json", out(path)], capture_output=True, check=True)
    streams: list[dict[str, object]] = json.loads(done.stdout)["streams"]
    return streams
