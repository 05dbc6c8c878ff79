"""Which recording formats are taken and how each is sent: tables of the decisions (issue 12.6).

By name (inbox/filters.py), by plan (media.plan with the extension), and the cheap content check that tells
an MPEG transport stream from a TypeScript source named .ts (pipeline/prepare.py).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from transcribed import media
from transcribed.config import MediaConfig
from transcribed.errors import MediaError, NotMediaError
from transcribed.inbox.filters import (
    AMBIGUOUS_EXTENSIONS,
    AUDIO_EXTENSIONS,
    GLADIA_EXTENSIONS,
    MEDIA_EXTENSIONS,
    UNSUPPORTED_EXTENSION,
    VIDEO_EXTENSIONS,
    NameFilter,
)
from transcribed.media import AudioStream, Probe
from transcribed.pipeline.prepare import MediaTools, holds_transport_stream

DEFAULT = NameFilter()
STREAM = AudioStream(index=0, codec="opus", channels=1, language=None)


@pytest.mark.parametrize(("name", "taken"), [
    ("call.webm", True),                 # a browser or Meet recording, yt-dlp's audio
    ("talk.aiff", True), ("Take 1.aif", True), ("mix.AIFC", True),   # GarageBand, Logic
    ("Plex Recording (2024).ts", True),  # Plex DVR, Tvheadend
    ("00001.MTS", True), ("00001.m2ts", True), ("hdv.m2t", True),    # camcorders
    ("band.mka", True), ("voice.wma", True), ("memo.amr", True), ("memo.awb", True), ("memo.3ga", True),
    ("voice.caf", True), ("book.m4b", True), ("show.mpg", True), ("show.MPEG", True), ("VTS_01_1.VOB", True),
    ("clip.ogv", True), ("song.oga", True), ("talk.weba", True), ("dictation.dss", True),
    ("Recorded TV.wtv", True), ("old.asf", True), ("flash.f4v", True), ("camera.mxf", True), ("tape.dv", True),
    ("talk.mp3", True), ("talk.wav", True), ("film.mkv", True),       # what Gladia lists, as before
    ("notes.docx", False), ("agenda.pdf", False), ("photo.jpg", False), ("go.mod", False),
    ("app.tsx", False), ("types.d.cts", False), ("archive.zip", False), ("talk.webm.part", False),
    (".call.webm", False), ("call.webm.crdownload", False), ("call.srt", False),
])
def test_recording_formats_are_taken_by_name(name: str, taken: bool) -> None:
    assert (DEFAULT.file_reason(name) is None) is taken


@pytest.mark.parametrize(("name", "reason"), [
    ("notes.docx", UNSUPPORTED_EXTENSION),          # counted in the scan's files_passed_over line
    ("noextension", UNSUPPORTED_EXTENSION),
    ("talk.webm.part", "temporary or partial name"),   # not counted: not passed over for its extension
    (".hidden.docx", "hidden"),
    ("Thumbs.db", "operating system or NAS litter"),
])
def test_only_unknown_extensions_are_passed_over_for_their_extension(name: str, reason: str) -> None:
    assert DEFAULT.file_reason(name) == reason


def test_the_extension_tables_hold_together() -> None:
    assert GLADIA_EXTENSIONS <= MEDIA_EXTENSIONS
    assert not AUDIO_EXTENSIONS & VIDEO_EXTENSIONS
    assert set(AMBIGUOUS_EXTENSIONS) <= MEDIA_EXTENSIONS - GLADIA_EXTENSIONS
    assert {"ts", "mts"} <= set(AMBIGUOUS_EXTENSIONS)


def test_exclude_still_turns_a_default_extension_away() -> None:
    names = NameFilter(exclude=("*.ts",))
    assert names.file_reason("app.ts") == "matches inbox.exclude"
    assert names.file_reason("rec.m2ts") is None


def probe(fmt: str, video: bool = False) -> Probe:
    return Probe(duration=60.0, size=1_000_000, format_name=fmt, has_video=video, audio_streams=(STREAM,))


# extension, what ffprobe reports, video?, (the action, with ffmpeg) and (without ffmpeg)
@pytest.mark.parametrize(("extension", "fmt", "video", "with_ffmpeg", "without_ffmpeg"), [
    (".mp3", "mp3", False, "as_is", "as_is"),
    (".ogg", "ogg", False, "as_is", "as_is"),
    (".m4a", "mov,mp4,m4a,3gp,3g2,mj2", False, "as_is", "as_is"),
    (".mp4", "mov,mp4,m4a,3gp,3g2,mj2", True, "extract", "as_is"),
    (".webm", "matroska,webm", False, "extract", "as_is"),     # a listed container, an unlisted name
    (".mka", "matroska,webm", False, "extract", "as_is"),
    (".m4b", "mov,mp4,m4a,3gp,3g2,mj2", False, "extract", "as_is"),
    (".wma", "asf", False, "extract", "as_is"),
    (".oga", "ogg", False, "extract", "as_is"),
    (".aiff", "aiff", False, "extract", "as_is"),              # an unlisted container
    (".amr", "amr", False, "extract", "as_is"),
    (".caf", "caf", False, "extract", "as_is"),
    (".ts", "mpegts", True, "extract", "as_is"),
    (".mpg", "mpeg", True, "extract", "as_is"),
    (".ogv", "ogg", True, "extract", "as_is"),
])
def test_each_extension_gets_its_plan(extension: str, fmt: str, video: bool, with_ffmpeg: str,
                                      without_ffmpeg: str) -> None:
    unlisted = None if extension.lstrip(".") in GLADIA_EXTENSIONS else extension
    for ffmpeg, action in ((True, with_ffmpeg), (False, without_ffmpeg)):
        found = media.plan(probe(fmt, video), MediaConfig(), is_video=video, ffmpeg_available=ffmpeg,
                           unlisted=unlisted)
        assert found.action == action, (extension, ffmpeg, found.reason)
    never = media.plan(probe(fmt, video), MediaConfig(extract_audio="never"), is_video=video,
                       ffmpeg_available=True, unlisted=unlisted)
    assert never.action == "as_is"


def test_without_ffprobe_an_unlisted_extension_is_still_extracted() -> None:
    found = media.plan(None, MediaConfig(), is_video=False, ffmpeg_available=True, unlisted=".webm")
    assert found.action == "extract" and "'.webm' is not an extension Gladia lists" in found.reason
    assert media.plan(None, MediaConfig(), is_video=False, ffmpeg_available=True).action == "as_is"


def packets(size: int, count: int, lead: bytes = b"") -> bytes:
    return lead + b"".join(b"\x47" + bytes(size - 1) for _ in range(count))


@pytest.mark.parametrize(("content", "transport_stream"), [
    (packets(188, 8), True),                        # broadcast / DVR
    (packets(192, 8, lead=b"\x00\x00\x00\x00")[:-4], True),   # camcorder M2TS: a timestamp before each
    (packets(204, 8), True),
    (b"\x00" * 100 + packets(188, 8), True),        # starts mid-packet
    (b"export const x: number = 1;\n" * 40, False),  # TypeScript
    (b'<?xml version="1.0"?>\n<TS version="2.1" language="de">' + b" " * 900, False),  # Qt Linguist
    (b"G" * 10, False),                             # too short to hold packets
    (b"", False),
])
def test_transport_streams_are_told_from_text(tmp_path: Path, content: bytes, transport_stream: bool) -> None:
    path = tmp_path / "x.ts"
    path.write_bytes(content)
    assert holds_transport_stream(path) is transport_stream


def test_a_typescript_source_named_ts_is_set_aside_without_ffprobe(tmp_path: Path) -> None:
    tools = MediaTools(MediaConfig(), ffmpeg=None, ffprobe=None)
    for name in ("app.ts", "module.mts"):
        source = tmp_path / name
        source.write_text("export const x: number = 1;\n" * 50)
        with pytest.raises(NotMediaError, match=r"not media: no MPEG transport stream.*TypeScript"):
            tools.decide(source)
    stream = tmp_path / "rec.ts"
    stream.write_bytes(packets(188, 20))
    plan, found = tools.decide(stream)
    assert found is None and plan.action == "as_is"   # no ffmpeg: sent as it is, Gladia's to judge


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe is not installed")
def test_a_transport_stream_with_no_audio_fails_as_a_recording_does(tmp_path: Path) -> None:
    """Its packets say it is a recording (not TypeScript): no audio in it is a failure with the reason, as
    for an .mkv with no audio, not a file set aside as something else."""
    stream = tmp_path / "rec.ts"
    stream.write_bytes(packets(188, 20))          # sync bytes, but nothing in them
    tools = MediaTools(MediaConfig(), ffmpeg=shutil.which("ffmpeg"), ffprobe=shutil.which("ffprobe"))
    with pytest.raises(MediaError) as raised:
        tools.decide(stream)
    assert not isinstance(raised.value, NotMediaError)


def test_the_readme_table_lists_what_is_taken_and_how_it_is_sent() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## What is taken", 1)[1].split("\n## ", 1)[0]
    listed: set[str] = set()
    for row in re.findall(r"^\| (`\..*?) \| (.*?) \| (.*?) \|$", section, flags=re.M):
        extensions = set(re.findall(r"`\.(\w+)`", row[0]))
        kind, sent = row[1].split()[0].rstrip(","), row[2]
        assert extensions <= (AUDIO_EXTENSIONS if kind == "audio" else VIDEO_EXTENSIONS), row
        as_is = extensions <= GLADIA_EXTENSIONS and kind == "audio"
        assert sent.startswith("as it is" if as_is else "audio extracted"), row
        for extension in extensions & set(AMBIGUOUS_EXTENSIONS):
            assert f"`.{extension}` confirmed first" in sent, row
        assert not listed & extensions, row
        listed |= extensions
    assert listed == MEDIA_EXTENSIONS
