"""What gets uploaded for a file: the pure decisions of transcribed.media (plan, stream choice, names,
parsing ffprobe's description), as tables of cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from transcribed import media
from transcribed.config import MediaConfig
from transcribed.errors import MediaError
from transcribed.media import AudioStream, Plan, Probe
from transcribed.media.probe import language_matches, one_line, parse_probe

MB = 1_000_000
MONO = AudioStream(index=0, codec="mp3", channels=1, language=None)


def audio(duration: float | None = 600.0, size: int = 10 * MB, fmt: str = "mp3",
          streams: tuple[AudioStream, ...] = (MONO,), video: bool = False) -> Probe:
    return Probe(duration=duration, size=size, format_name=fmt, has_video=video, audio_streams=streams)


def decide(probe: Probe | None, *, ffmpeg: bool = True, is_video: bool = False, per_channel: bool = False,
           **settings: object) -> Plan:
    return media.plan(probe, MediaConfig(**settings), is_video=is_video,  # type: ignore[arg-type]
                      ffmpeg_available=ffmpeg, per_channel=per_channel)


# ----------------------------------------------------------------------------------------------- plan

@pytest.mark.parametrize(("probe", "settings", "action"), [
    (audio(), {}, "as_is"),                                                    # an ordinary podcast
    (audio(size=150 * MB), {}, "extract"),                                     # a big WAV-like file
    (audio(size=150 * MB), {"extract_threshold_mb": 200.0}, "as_is"),
    (audio(fmt="mov,mp4,m4a,3gp,3g2,mj2", video=True), {}, "extract"),        # a film
    (audio(fmt="aiff"), {}, "extract"),                                        # not a format Gladia lists
    (audio(fmt="matroska,webm"), {}, "as_is"),
    (audio(), {"extract_audio": "always"}, "extract"),
    (audio(video=True), {"extract_audio": "never"}, "as_is"),
    (audio(duration=136 * 60.0), {}, "split"),                                 # just over 135 min
    (audio(duration=135 * 60.0), {}, "as_is"),                                 # exactly at the limit
    (audio(duration=134.9 * 60.0, video=True, fmt="matroska,webm"), {}, "extract"),
    (audio(size=1001 * MB, duration=3600.0), {}, "extract"),                   # over 1000 MB, opus fits
    (audio(size=999 * MB, duration=3600.0), {"extract_threshold_mb": 2000.0}, "as_is"),
    (audio(duration=None, size=2000 * MB), {}, "extract"),                     # no duration: cannot split
    (audio(duration=300 * 60.0), {"max_duration_minutes": 255.0}, "split"),   # an enterprise limit
    (audio(duration=250 * 60.0), {"max_duration_minutes": 255.0}, "as_is"),
])
def test_action_follows_the_limits_and_the_mode(probe: Probe, settings: dict[str, object], action: str) -> None:
    assert decide(probe, **settings).action == action


def test_over_the_duration_limit_splits_into_even_parts_within_it() -> None:
    found = decide(audio(duration=140 * 60.0))
    assert found.action == "split"
    assert [(p.index, p.start, p.end) for p in found.parts] == [(0, 0.0, 4200.0), (1, 4200.0, 8400.0)]
    assert found.max_part_seconds == 135 * 60.0
    assert "140.0 min is over the 135.0 min limit" in found.reason
    long = decide(audio(duration=8 * 3600.0))
    assert len(long.parts) == 4
    assert all(p.end - p.start <= media.part_budget(135 * 60.0) for p in long.parts)
    assert long.parts[-1].end == 8 * 3600.0


def test_an_extract_estimated_over_the_upload_limit_is_split() -> None:
    # 16 kHz 16-bit mono WAV is 32 kB/s: 1 MB holds about 30 s, so 100 s needs 4 parts.
    found = decide(audio(duration=100.0, size=20 * MB), codec="wav", max_upload_mb=1.0, extract_threshold_mb=5.0)
    assert found.action == "split"
    assert found.max_part_seconds is not None and found.max_part_seconds < 31
    assert len(found.parts) == 4
    assert "as wav" in found.reason


def test_per_channel_keeps_the_channels_and_counts_them_in_the_estimate() -> None:
    stereo = AudioStream(index=0, codec="pcm_s16le", channels=2, language=None)
    probe = audio(duration=100.0, size=20 * MB, fmt="wav", streams=(stereo,))
    mono = decide(probe, codec="wav", max_upload_mb=4.0)
    both = decide(probe, codec="wav", max_upload_mb=4.0, per_channel=True)
    assert (mono.action, mono.channels) == ("extract", 1)
    assert (both.action, both.channels) == ("split", 2)


@pytest.mark.parametrize("probe", [audio(duration=140 * 60.0), audio(size=1200 * MB)])
def test_without_ffmpeg_what_is_over_a_limit_needs_ffmpeg(probe: Probe) -> None:
    with pytest.raises(MediaError, match=r"^needs ffmpeg: .*over the"):
        decide(probe, ffmpeg=False)


def test_without_ffmpeg_what_is_within_the_limits_is_sent_as_it_is() -> None:
    film = decide(audio(video=True, fmt="matroska,webm"), ffmpeg=False)
    assert film.action == "as_is"
    assert "ffmpeg is missing" in film.reason


def test_never_mode_refuses_what_cannot_be_sent_as_it_is() -> None:
    with pytest.raises(MediaError, match="never"):
        decide(audio(duration=140 * 60.0), extract_audio="never")


def test_without_ffprobe_only_the_name_is_known() -> None:
    assert decide(None, is_video=True).action == "extract"
    assert decide(None, is_video=True, ffmpeg=False).action == "as_is"
    assert decide(None, is_video=False).action == "as_is"
    assert "limits not checked" in decide(None).reason


# --------------------------------------------------------------------------------------- audio tracks

ENGLISH = AudioStream(index=1, codec="aac", channels=2, language="eng", default=True)
FRENCH = AudioStream(index=2, codec="aac", channels=2, language="fre")
COMMENTARY = AudioStream(index=3, codec="aac", channels=2, language=None)
FILM = audio(fmt="matroska,webm", video=True, streams=(ENGLISH, FRENCH, COMMENTARY))


@pytest.mark.parametrize(("wanted", "index", "note"), [
    ("", 1, ""),
    ("fr", 2, ""),             # Gladia's code against the container's bibliographic one
    ("fra", 2, ""),
    ("FR-ca", 2, ""),
    (3, 3, ""),
    ("de", 1, "no 'de' audio track: #1 is used"),
    (7, 1, "no audio stream #7: #1 is used"),
])
def test_the_audio_track_is_chosen_by_number_or_language(wanted: int | str, index: int, note: str) -> None:
    stream, found_note = media.choose_stream(FILM.audio_streams, wanted)
    assert (stream.index, found_note) == (index, note)


def test_several_tracks_are_extracted_so_only_the_chosen_one_is_sent() -> None:
    found = decide(audio(fmt="matroska,webm", streams=(ENGLISH, FRENCH)), audio_stream="fr")
    assert (found.action, found.stream) == ("extract", 2)
    assert "2 audio tracks: only #2 (fre) is sent" in found.reason


def test_the_default_track_is_the_first_without_a_default_flag() -> None:
    stream, _ = media.choose_stream((FRENCH, COMMENTARY), "")
    assert stream is FRENCH


@pytest.mark.parametrize(("tag", "wanted", "expected"), [
    ("eng", "en", True), ("en", "eng", True), ("ger", "de", True), ("deu", "ger", True), ("zho", "zh", True),
    ("pt-BR", "pt", True), ("eng", "fr", False), (None, "en", False), ("jav", "jw", True),
])
def test_language_codes_of_both_iso_forms_match(tag: str | None, wanted: str, expected: bool) -> None:
    assert language_matches(tag, wanted) is expected


# ---------------------------------------------------------------------------------------------- names

@pytest.mark.parametrize(("source", "prepared", "name"), [
    ("/srv/inbox/Film (2001).mkv", "/tmp/w/Film (2001).ogg", "Film (2001).ogg"),
    ("/srv/inbox/-rf.mp4", "/tmp/w/-rf.part02.ogg", "-rf.ogg"),
    ("/srv/inbox/two\nlines.mp4", "/tmp/w/x.ogg", "two_lines.ogg"),
    ("/srv/inbox/caf\udce9.wav", "/tmp/w/x.ogg", "caf\ufffd.ogg"),   # a Latin-1 name on a UTF-8 system
    ("/srv/inbox/talk.mp3", "/srv/inbox/talk.mp3", "talk.mp3"),
])
def test_upload_names_carry_the_source_name_and_the_extract_suffix(source: str, prepared: str, name: str) -> None:
    assert media.upload_name(Path(source), Path(prepared)) == name


def test_error_lines_never_carry_the_file_name_or_a_newline() -> None:
    argument = "file:/srv/inbox/evil\nname.mp4"
    stderr = f"[mov @ 0x1] moov atom not found\n{argument}: Invalid data found when processing input\n".encode()
    assert one_line(stderr, argument, fallback="?") == "Invalid data found when processing input"
    assert one_line(b"", argument, fallback="ffprobe exited with 1") == "ffprobe exited with 1"
    assert len(one_line(b"x" * 1000, argument, fallback="?")) == 200


# ------------------------------------------------------------------------------------ ffprobe's JSON

def stream(index: int, kind: str, **extra: object) -> dict[str, object]:
    return {"index": index, "codec_type": kind, "codec_name": "aac" if kind == "audio" else "h264",
            "disposition": {"default": 0, "attached_pic": 0}, **extra}


def test_probe_description_is_read_tolerantly() -> None:
    found = parse_probe({
        "streams": [stream(0, "video"), stream(1, "audio", channels=6, tags={"language": "eng"},
                                                 disposition={"default": 1}),
                    stream(2, "audio", tags={"language": "und"}), stream(3, "subtitle")],
        "format": {"format_name": "matroska,webm", "duration": "5400.5"},
    }, 123)
    assert found == Probe(duration=5400.5, size=123, format_name="matroska,webm", has_video=True, audio_streams=(
        AudioStream(1, "aac", 6, "eng", default=True), AudioStream(2, "aac", None, None)), subtitle_languages=(None,))


def test_cover_art_is_not_a_video_and_stream_durations_stand_in() -> None:
    found = parse_probe({
        "streams": [stream(0, "audio", duration="61.5"), stream(1, "video", disposition={"attached_pic": 1})],
        "format": {"format_name": "mp3", "duration": "N/A"},
    }, 5)
    assert (found.has_video, found.duration) == (False, 61.5)


@pytest.mark.parametrize(("data", "message"), [
    ({"streams": [stream(0, "video")], "format": {}}, "no audio stream"),
    ({}, "no audio stream"),
    ([], "no audio stream"),
    ({"streams": [stream(0, "audio", codec_name="none")]}, "cannot be decoded"),
])
def test_files_without_usable_audio_are_refused(data: object, message: str) -> None:
    with pytest.raises(MediaError, match=message):
        parse_probe(data, 1)


def test_a_plain_wav_is_probed_from_its_header(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import wave

    from transcribed.media.probe import wav_probe

    path = tmp_path / "talk.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\0\0\0\0" * 8000 * 3)
    found = wav_probe(path, path.stat().st_size)
    assert found is not None and abs((found.duration or 0) - 3.0) < 1e-6
    assert found.audio_streams[0].channels == 2 and not found.has_video
    (tmp_path / "fake.wav").write_bytes(b"RIFF\0\0\0\0WAVEjunk")
    assert wav_probe(tmp_path / "fake.wav", 16) is None        # anything odd goes to ffprobe
    assert wav_probe(tmp_path / "talk.mp3", 10) is None
