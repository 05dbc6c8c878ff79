"""Media preparation in the daemon: extraction, no-audio files, splitting long recordings (issue #8)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from support import make_wav, run_cli, write_config

from transcribed.emulator import Emulator

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True,
                   timeout=120)


def test_video_is_extracted_no_audio_fails_long_audio_is_split(tmp_path: Path, emulator: Emulator) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    video = inbox / "lecture.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=640x360:rate=25:duration=8", "-f", "lavfi", "-i",
           "sine=frequency=440:duration=8", "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "2M",
           "-c:a", "aac", "-shortest", str(video))
    silent = inbox / "silent.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=10:duration=2", "-c:v", "libx264", "-preset",
           "ultrafast", str(silent))
    long = inbox / "long.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:duration=40", "-f", "lavfi", "-i",
           "anullsrc=r=8000:cl=mono:d=4", "-f", "lavfi", "-i", "sine=frequency=500:duration=40",
           "-filter_complex", "[0][1][2]concat=n=3:v=0:a=1", "-ar", "8000", "-ac", "1", str(long))
    config = write_config(tmp_path / "config.toml", emulator.base_url, inbox, tmp_path / "ledger.db",
                          media={"max_duration_minutes": 1.0})
    result = run_cli("once", "--config", str(config), timeout=240)
    assert result.returncode == 1, result.stdout[-3000:]       # silent.mp4 failed; the others are done

    uploaded = {job["file"]["filename"]: job for job in emulator.jobs()}  # type: ignore[index]
    assert "lecture.ogg" in uploaded                                       # the audio, named after the source
    assert emulator.counters()["bytes_uploaded"] < video.stat().st_size + long.stat().st_size
    assert (inbox / "lecture.txt").is_file()

    status = json.loads(run_cli("status", "--config", str(config), "--json").stdout)
    failures = {Path(f["path"]).name: f["reason"] for f in status["failures"]}
    assert "no audio" in failures["silent.mp4"]
    assert "silent.ogg" not in uploaded and "silent.mp4" not in uploaded  # 0 bytes uploaded for it

    names = [job["file"]["filename"] for job in emulator.jobs()]  # type: ignore[index]
    assert names.count("long.ogg") == 2                                     # two parts, one job each
    body = json.loads((inbox / "long.json").read_text())
    parts = body["result"]["metadata"]["transcribed"]["parts"]
    assert len(parts) == 2 and parts[1]["start"] > 30
    utterances = body["result"]["transcription"]["utterances"]
    starts = [u["start"] for u in utterances]
    assert starts == sorted(starts) and max(u["end"] for u in utterances) > 60  # offsets applied
    srt = (inbox / "long.srt").read_text()
    assert srt.startswith("1\n") and "00:01:" in srt


def test_without_ffmpeg_what_needs_preparation_is_set_aside(tmp_path: Path, emulator: Emulator) -> None:
    inbox = tmp_path / "inbox"
    small = make_wav(inbox / "small.wav", seconds=2.0)
    long = make_wav(inbox / "long.wav", seconds=75.0)
    config = write_config(tmp_path / "config.toml", emulator.base_url, inbox, tmp_path / "ledger.db",
                          media={"max_duration_minutes": 1.0, "ffmpeg": "/nonexistent/ffmpeg"})
    result = run_cli("once", "--config", str(config), timeout=240)
    assert result.returncode == 0, result.stdout[-3000:]
    assert small.with_suffix(".txt").is_file() and not long.with_suffix(".txt").exists()
    assert '"ffmpeg_missing"' in result.stdout
    explained = run_cli("explain", "--config", str(config), str(long)).stdout
    assert "needs ffmpeg" in explained
    assert [job["file"]["filename"] for job in emulator.jobs()] == ["small.wav"]  # type: ignore[index]
