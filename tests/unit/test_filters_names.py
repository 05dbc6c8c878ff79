"""Which names count as media: tables of names people and tools really produce, plus properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transcribed.inbox.filters import MEDIA_EXTENSIONS, NameFilter

DEFAULT = NameFilter()


@pytest.mark.parametrize("name", [
    "talk.mp3", "TALK.MP3", "Interview.Wav", "clip.mkv", "a.b.c.flac", "x.3gp", "x.3g2", "x.eac3", "x.opus",
    "-leading-dash.mp3", "with space.m4a", "ünïcödé.ogg", "line\nbreak.mp4", "undecodable-\udcff.wav",
    "~tilde-start.mp3", "#hash.mov",
])
def test_media_names_count(name: str) -> None:
    assert DEFAULT.file_reason(name) is None


@pytest.mark.parametrize(("name", "why"), [
    (".hidden.mp3", "hidden"),
    ("._talk.mp3", "hidden"),
    (".DS_Store", "hidden"),
    (".syncthing.talk.mp3.tmp", "hidden"),
    (".talk.mp3.AbC123", "hidden"),                 # rsync's temp name
    (".talk.srt.transcribed-tmp-x1y2", "hidden"),   # the daemon's own atomic-write temp
    ("talk.mp3.part", "temporary"),
    ("talk.mp3.partial", "temporary"),
    ("talk.mp3.tmp", "temporary"),
    ("talk.mp3.crdownload", "temporary"),
    ("talk.mp3.download", "temporary"),
    ("talk.mp3.!qB", "temporary"),
    ("talk.mp3.filepart", "temporary"),
    ("talk.mp3.aria2", "temporary"),
    ("talk.mp3~", "temporary"),
    ("~$talk.mp3", "temporary"),
    ("~syncthing~talk.mp3.tmp", "temporary"),
    ("talk.txt", "transcript"),
    ("talk.srt", "transcript"),
    ("talk.en.vtt", "transcript"),
    ("talk.json", "transcript"),
    ("talk.summary.txt", "transcript"),
    ("talk.mp3.transcribed-tmp", "temporary"),
    ("Thumbs.db", "litter"),
    ("desktop.ini", "litter"),
    ("notes.pdf", "not a supported"),
    ("noextension", "not a supported"),
    ("mp3", "not a supported"),
    ("", "hidden"),
])
def test_junk_and_temporary_names_are_ignored(name: str, why: str) -> None:
    reason = DEFAULT.file_reason(name)
    assert reason is not None and why in reason


@pytest.mark.parametrize("name", ["@eaDir", "#recycle", ".stfolder", ".stversions", "__MACOSX", ".Trashes",
                                  "lost+found", ".hidden", "$RECYCLE.BIN", "System Volume Information"])
def test_litter_folders_are_pruned(name: str) -> None:
    assert DEFAULT.directory_reason(name) is not None


@pytest.mark.parametrize("name", ["meetings", "x.mp3", "2024", "-dash"])
def test_ordinary_folders_are_entered(name: str) -> None:
    assert DEFAULT.directory_reason(name) is None


def test_include_adds_extensions_case_insensitively_but_never_junk() -> None:
    names = NameFilter(include=("*.WEBM", "*.amr"))
    assert names.accepts_file("clip.webm")
    assert names.accepts_file("CLIP.WebM")
    assert names.accepts_file("voice.amr")
    assert not names.accepts_file("clip.webm.part")
    assert not names.accepts_file(".clip.webm")
    assert not NameFilter(include=("*",)).accepts_file("talk.srt")


def test_exclude_wins_over_media_and_include() -> None:
    names = NameFilter(include=("*.webm",), exclude=("draft-*", "*.WAV"))
    assert not names.accepts_file("draft-talk.mp3")
    assert not names.accepts_file("talk.wav")
    assert not names.accepts_file("DRAFT-clip.webm")
    assert names.accepts_file("talk.mp3")
    assert names.directory_reason("draft-folder") is not None


def test_globs_with_a_slash_match_the_relative_path() -> None:
    names = NameFilter(exclude=("archive/*",))
    assert names.uses_paths
    assert not names.accepts_file("talk.mp3", "archive/talk.mp3")
    assert names.accepts_file("talk.mp3", "live/talk.mp3")
    assert not names.accepts_directory("old", "archive/old")
    assert not NameFilter().uses_paths


def test_media_extensions_follow_gladia_supported_formats() -> None:
    assert {"aac", "ac3", "eac3", "flac", "m4a", "mp2", "mp3", "ogg", "opus", "wav"} <= MEDIA_EXTENSIONS
    assert {"3g2", "3gp", "avi", "flv", "m4v", "mkv", "mov", "mp4", "wmv"} <= MEDIA_EXTENSIONS


names_strategy = st.text(st.characters(codec="utf-8") | st.sampled_from(["\udc80", "\udcff", "\n", "\r"]),
                         max_size=80)


@given(name=names_strategy, relative=st.none() | names_strategy)
def test_any_name_gets_an_answer_never_an_exception(name: str, relative: str | None) -> None:
    names = NameFilter(include=("*.webm", "in/*"), exclude=("x*", "out/*"))
    for check in (names.file_reason, names.directory_reason):
        reason = check(name, relative)
        assert reason is None or (isinstance(reason, str) and "\n" not in reason)


@given(stem=names_strategy, extension=st.sampled_from(sorted(MEDIA_EXTENSIONS)))
def test_hidden_names_never_count(stem: str, extension: str) -> None:
    assert not NameFilter(include=("*",)).accepts_file(f".{stem}.{extension}")


@given(stem=names_strategy.filter(lambda s: s[:1] not in (".", "~") and "/" not in s and s),
       extension=st.sampled_from(sorted(MEDIA_EXTENSIONS)),
       temporary=st.sampled_from(["part", "partial", "tmp", "crdownload", "download", "!qB", "filepart"]))
def test_a_temporary_suffix_always_wins(stem: str, extension: str, temporary: str) -> None:
    assert not NameFilter(include=("*",)).accepts_file(f"{stem}.{extension}.{temporary}")


@given(stem=st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=20),
       extension=st.sampled_from(sorted(MEDIA_EXTENSIONS)))
def test_extensions_are_case_insensitive(stem: str, extension: str) -> None:
    assert NameFilter().accepts_file(f"{stem}.{extension.upper()}")
    assert NameFilter().accepts_file(f"{stem}.{extension}")


media_like = st.builds(lambda stem, extension: f"{stem}.{extension}", names_strategy,
                       st.sampled_from([*sorted(MEDIA_EXTENSIONS), "MP3", "Wav", "mKv", "part", "srt"]))


@given(name=names_strategy | media_like)
def test_the_fast_path_for_plain_filters_agrees_with_the_full_rules(name: str) -> None:
    never = NameFilter(exclude=("\x00 matches no file name",))   # any exclude glob disables the fast path
    assert DEFAULT.accepts_file(name) == never.accepts_file(name)
