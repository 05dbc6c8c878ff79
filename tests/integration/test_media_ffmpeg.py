"""Media preparation with the real ffprobe and ffmpeg, on files generated into tmp_path: probing, the
plan, extraction, splitting at quiet points, hostile names, stop and failure leaving nothing behind."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.integration.media_fixtures import (
    FFMPEG,
    FFPROBE,
    duration_of,
    long_recording,
    needs_ffmpeg,
    silent_video,
    speech,
    streams_of,
    truncated,
    two_tracks,
    video,
)

from transcribed import media
from transcribed.config import MediaConfig
from transcribed.errors import MediaError
from transcribed.media.split import SAFE_PAUSE_SECONDS

pytestmark = needs_ffmpeg
CONFIG = MediaConfig()


def ffmpeg() -> str:
    assert FFMPEG is not None
    return FFMPEG


def ffprobe() -> str:
    assert FFPROBE is not None
    return FFPROBE


def prepare(source: Path, config: MediaConfig, workdir: Path, *, is_video: bool = False) -> list[Path]:
    """What the pipeline does: probe, plan, refine the parts, extract each; return what would be uploaded."""
    found = media.probe(source, config, ffprobe())
    plan = media.plan(found, config, is_video=is_video, ffmpeg_available=True)
    if plan.action == "as_is":
        return [source]
    if plan.action == "extract":
        return [media.extract(source, plan, config, ffmpeg(), workdir)]
    assert found.duration is not None and plan.max_part_seconds is not None
    parts = media.split_points(source, found.duration, plan.max_part_seconds, config, ffmpeg(), stream=plan.stream)
    return [media.extract(source, plan, config, ffmpeg(), workdir, part=part) for part in parts]


def test_a_video_is_sent_as_its_audio_only(tmp_path: Path) -> None:
    source = video(tmp_path / "talk.mp4", 6)
    found = media.probe(source, CONFIG, ffprobe())
    assert found.has_video
    assert found.duration == pytest.approx(6, abs=0.2)
    plan = media.plan(found, CONFIG, is_video=True, ffmpeg_available=True)
    assert plan.action == "extract"
    [extract] = prepare(source, CONFIG, tmp_path, is_video=True)
    assert extract.name == "talk.ogg"
    assert media.upload_name(source, extract) == "talk.ogg"
    assert streams_of(extract) == [{"codec_type": "audio", "codec_name": "opus", "channels": 1,
                                    "sample_rate": "48000"}]   # Ogg Opus always reports 48 kHz playback
    assert duration_of(extract) == pytest.approx(6, abs=0.1)
    assert extract.stat().st_size < source.stat().st_size


def test_per_channel_extracts_keep_the_channels(tmp_path: Path) -> None:
    source = video(tmp_path / "stereo.mp4", 2)
    found = media.probe(source, CONFIG, ffprobe())
    plan = media.plan(found, CONFIG, is_video=True, ffmpeg_available=True, per_channel=True)
    extract = media.extract(source, plan, CONFIG, ffmpeg(), tmp_path)
    assert streams_of(extract)[0]["channels"] == 2


def test_the_chosen_audio_track_is_the_one_extracted(tmp_path: Path) -> None:
    source = two_tracks(tmp_path / "film.mkv")
    found = media.probe(source, CONFIG, ffprobe())
    assert [(s.index, s.language) for s in found.audio_streams] == [(1, "eng"), (2, "fre")]
    for wanted, seconds in (("fr", 2), ("", 4), (1, 4), ("de", 4)):
        config = MediaConfig(audio_stream=wanted)
        plan = media.plan(found, config, is_video=True, ffmpeg_available=True)
        extract = media.extract(source, plan, config, ffmpeg(), tmp_path)
        assert duration_of(extract) == pytest.approx(seconds, abs=0.5), wanted


def test_a_file_without_audio_fails_before_any_upload(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"^no audio stream$"):
        media.probe(silent_video(tmp_path / "silent.mp4"), CONFIG, ffprobe())


def text_file(path: Path) -> Path:
    path.write_text("not media\n")
    return path


@pytest.mark.parametrize("make", [truncated, text_file], ids=["truncated", "text"])
def test_a_file_that_cannot_be_decoded_fails_with_one_line(tmp_path: Path, make: Callable[[Path], Path]) -> None:
    source = make(tmp_path / "odd\nname.mp4")
    with pytest.raises(MediaError) as caught:
        media.probe(source, CONFIG, ffprobe())
    message = str(caught.value)
    assert message.startswith("cannot be decoded: ")
    assert "\n" not in message
    assert "odd" not in message


def test_a_failed_extract_leaves_nothing(tmp_path: Path) -> None:
    source = truncated(tmp_path / "cut.mp4")
    workdir = tmp_path / "work"
    workdir.mkdir()
    plan = media.Plan("extract", "forced")
    with pytest.raises(MediaError, match="cannot be decoded"):
        media.extract(source, plan, CONFIG, ffmpeg(), workdir)
    assert list(workdir.iterdir()) == []


def test_a_vanished_file_is_an_os_error_not_a_media_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        media.probe(tmp_path / "gone.wav", CONFIG, ffprobe())


# ------------------------------------------------------------------------------------------- limits

@pytest.mark.parametrize(("seconds", "uploads"), [(55, 1), (70, 2)])
def test_just_under_and_just_over_the_duration_limit(tmp_path: Path, seconds: int, uploads: int) -> None:
    config = MediaConfig(max_duration_minutes=1.0)
    source = speech(tmp_path / "call.wav", seconds)
    sent = prepare(source, config, tmp_path)
    assert len(sent) == uploads
    if uploads == 1:
        assert sent == [source]
        return
    durations = [duration_of(part) for part in sent]
    assert sum(durations) == pytest.approx(seconds, abs=0.2)
    assert all(d <= 60 for d in durations)
    assert [p.name for p in sent] == ["call.part01.ogg", "call.part02.ogg"]
    # The cut is in a pause of the "speech" (the last second of every 4).
    found = media.probe(source, config, ffprobe())
    plan = media.plan(found, config, is_video=False, ffmpeg_available=True)
    assert plan.max_part_seconds is not None
    [first, second] = media.split_points(source, 70.0, plan.max_part_seconds, config, ffmpeg())
    assert 3.0 <= first.end % 4 <= 4.0
    assert (first.start, second.start, second.end) == (0.0, first.end, 70.0)


@pytest.mark.parametrize(("limit_mb", "action"), [(0.33, "as_is"), (0.30, "extract")])
def test_just_under_and_just_over_the_upload_limit(tmp_path: Path, limit_mb: float, action: str) -> None:
    source = speech(tmp_path / "memo.wav", 10)   # 16 kHz 16-bit mono: 320 kB and a header
    config = MediaConfig(max_upload_mb=limit_mb)
    plan = media.plan(media.probe(source, config, ffprobe()), config, is_video=False, ffmpeg_available=True)
    assert plan.action == action
    assert all(p.stat().st_size <= limit_mb * 1_000_000 for p in prepare(source, config, tmp_path))


def test_an_extract_over_the_upload_limit_is_split_into_parts_under_it(tmp_path: Path) -> None:
    source = speech(tmp_path / "memo.flac", 20, "-c:a", "flac")
    config = MediaConfig(max_upload_mb=0.2, codec="wav")
    sent = prepare(source, config, tmp_path)
    assert len(sent) >= 4
    assert all(p.suffix == ".wav" and p.stat().st_size <= 200_000 for p in sent)
    assert sum(duration_of(p) for p in sent) == pytest.approx(20, abs=0.2)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return long_recording(tmp_path_factory.mktemp("long") / "140 minutes.ogg")


def test_a_140_minute_recording_is_split_in_the_silences(recording: Path) -> None:
    found = media.probe(recording, CONFIG, ffprobe())
    assert found.duration == pytest.approx(140 * 60, abs=1)
    plan = media.plan(found, CONFIG, is_video=False, ffmpeg_available=True)
    assert (plan.action, len(plan.parts)) == ("split", 2)
    assert plan.max_part_seconds is not None
    parts = media.split_points(recording, found.duration, plan.max_part_seconds, CONFIG, ffmpeg(), stream=plan.stream)
    assert len(parts) == 2
    assert all(p.duration <= media.part_budget(135 * 60) for p in parts)
    cut = parts[0].end
    assert 50 + SAFE_PAUSE_SECONDS / 2 <= cut % 60 <= 60 - SAFE_PAUSE_SECONDS / 2   # inside a silence
    assert abs(cut - 70 * 60) <= 60                                                 # near the middle


def test_stop_kills_ffmpeg_promptly_and_leaves_nothing(recording: Path, tmp_path: Path) -> None:
    plan = media.Plan("extract", "the whole 140 minutes: long enough to be stopped mid-way", stream=0)
    stop = threading.Event()
    outcome: list[BaseException | Path] = []

    def run() -> None:
        try:
            outcome.append(media.extract(recording, plan, CONFIG, ffmpeg(), tmp_path, stop=stop))
        except (media.Stopped, MediaError, OSError) as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(p.stat().st_size > 0 for p in tmp_path.glob(".extract-*")):
        time.sleep(0.01)
    stop.set()
    worker.join(30)
    assert not worker.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], media.Stopped), outcome
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(media.Stopped):
        media.split_points(recording, 8400.0, 8100.0, CONFIG, ffmpeg(), stop)


# ------------------------------------------------------------------------------------ hostile names

@pytest.mark.parametrize("name", ["-i evil.wav", "pipe:1.wav", "two\nlines.wav", "a b 'c' \"d\" $(x).wav",
                                  "caf\udce9.wav", "x" * 250 + ".wav"])
def test_hostile_names_are_only_ever_file_names(tmp_path: Path, name: str) -> None:
    source = speech(tmp_path / name, 2)
    config = MediaConfig(extract_audio="always")
    found = media.probe(source, config, ffprobe())
    assert found.duration == pytest.approx(2, abs=0.1)
    workdir = tmp_path / "work"
    workdir.mkdir()
    plan = media.plan(found, config, is_video=False, ffmpeg_available=True)
    extract = media.extract(source, plan, config, ffmpeg(), workdir)
    assert extract.parent == workdir
    assert [p.name for p in workdir.iterdir()] == [extract.name]
    assert duration_of(extract) == pytest.approx(2, abs=0.1)
    uploaded = media.upload_name(source, extract)
    assert uploaded.endswith(".ogg") and "\n" not in uploaded
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "work"])   # nothing written beside it


# ---------------------------------------------------------------------------------------- the tools

def test_tools_are_found_or_reported_missing(tmp_path: Path) -> None:
    assert media.find_tools(CONFIG) == (ffmpeg(), ffprobe())
    assert media.find_tools(MediaConfig(ffmpeg="no-such-ffmpeg", ffprobe=str(tmp_path / "nothing"))) == (None, None)


def test_a_hanging_ffprobe_times_out_as_an_os_error(tmp_path: Path) -> None:
    slow = tmp_path / "ffprobe"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    with pytest.raises(TimeoutError):
        # Not a .wav: a plain WAV is read from its header and never reaches ffprobe.
        source = speech(tmp_path / "a.wav", 1).rename(tmp_path / "a.flac")
        media.probe(source, MediaConfig(probe_timeout_seconds=0.2), str(slow))
