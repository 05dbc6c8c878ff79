"""outputs/ write, naming, atomic and move on a real filesystem: names, placement, ownership, conflicts, symlinks,
permissions."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from transcribed.config import OutputConfig
from transcribed.outputs.atomic import TEMPORARY_MARKER, atomic_write
from transcribed.outputs.move import move_source
from transcribed.outputs.naming import plan_outputs
from transcribed.outputs.render import Rendered
from transcribed.outputs.write import OutputWriteError, write_outputs

RENDERED = [
    Rendered("srt", "en", "transcript", "1\n00:00:00,000 --> 00:00:01,000\nHello.\n\n"),
    Rendered("txt", "en", "transcript", "Hello.\n"),
    Rendered("srt", "fr", "translation", "1\n00:00:00,000 --> 00:00:01,000\nBonjour.\n\n"),
    Rendered("txt", "en", "summary", "A greeting.\n"),
]


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def nobody(path: Path) -> str | None:
    return None


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    root = tmp_path / "inbox"
    (root / "talks").mkdir(parents=True)
    return root


@pytest.fixture
def source(inbox: Path) -> Path:
    path = inbox / "talks" / "talk.mp3"
    path.write_bytes(b"audio")
    return path


def visible(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if not name.startswith("."))


def test_outputs_are_written_beside_the_source_with_the_default_names(inbox: Path, source: Path) -> None:
    report = write_outputs(source, inbox, RENDERED, OutputConfig(), ours={}, owner_of=nobody)
    folder = source.parent
    assert visible(folder) == ["talk.fr.srt", "talk.mp3", "talk.srt", "talk.summary.txt", "talk.txt"]
    assert (folder / "talk.srt").read_text(encoding="utf-8") == RENDERED[0].text
    assert (folder / "talk.summary.txt").read_text(encoding="utf-8") == "A greeting.\n"
    assert report.written == {folder / name: digest(item.text) for name, item in zip(
        ["talk.srt", "talk.txt", "talk.fr.srt", "talk.summary.txt"], RENDERED, strict=True)}
    assert report.conflicts == []
    assert report.roles[folder / "talk.fr.srt"] == "fr.srt"
    assert report.roles[folder / "talk.summary.txt"] == "summary"
    assert not [name for name in os.listdir(folder) if TEMPORARY_MARKER in name]


def test_the_media_server_template_puts_the_language_in_every_name(inbox: Path, source: Path) -> None:
    config = OutputConfig(name="{stem}.{lang}.{format}", language_fallback="und")
    rendered = [*RENDERED, Rendered("vtt", None, "transcript", "WEBVTT\n"),
                Rendered("md", "../../etc", "transcript", "# x\n")]
    write_outputs(source, inbox, rendered, config, ours={}, owner_of=nobody)
    assert visible(source.parent) == [
        "talk.en.srt", "talk.en.summary.txt", "talk.en.txt", "talk.fr.srt", "talk.mp3", "talk.und.md", "talk.und.vtt",
    ]


def test_a_translation_with_the_transcripts_name_is_skipped_not_overwriting_it(inbox: Path, source: Path) -> None:
    config = OutputConfig(name="{stem}.{lang}.{format}")
    rendered = [RENDERED[0], Rendered("srt", "en", "translation", "other")]
    report = write_outputs(source, inbox, rendered, config, ours={}, owner_of=nobody)
    assert (source.parent / "talk.en.srt").read_text(encoding="utf-8") == RENDERED[0].text
    assert report.conflicts == [(source.parent / "talk.en.srt", "another output of this source has the same name")]


def test_an_output_directory_mirrors_the_inbox_tree(tmp_path: Path, inbox: Path, source: Path) -> None:
    config = OutputConfig(directory=tmp_path / "transcripts")
    report = write_outputs(source, inbox, RENDERED[:1], config, ours={}, owner_of=nobody)
    assert list(report.written) == [tmp_path / "transcripts" / "talks" / "talk.srt"]
    assert visible(source.parent) == ["talk.mp3"]
    with pytest.raises(ValueError):
        plan_outputs(tmp_path / "elsewhere" / "x.mp3", inbox, RENDERED, config)


def test_a_template_that_is_not_a_file_name_is_refused(inbox: Path, source: Path) -> None:
    with pytest.raises(ValueError, match="not a file name"):
        plan_outputs(source, inbox, RENDERED, OutputConfig(name="{lang}/{stem}.{format}"))


def test_our_own_unchanged_outputs_are_replaced_and_edited_ones_are_kept(inbox: Path, source: Path) -> None:
    first = write_outputs(source, inbox, RENDERED[:2], OutputConfig(), ours={}, owner_of=nobody)
    srt_path, txt_path = source.parent / "talk.srt", source.parent / "talk.txt"
    txt_path.write_text("my careful corrections\n", encoding="utf-8")
    newer = [Rendered("srt", "en", "transcript", "new srt"), Rendered("txt", "en", "transcript", "new txt")]
    second = write_outputs(source, inbox, newer, OutputConfig(), ours=first.written, owner_of=lambda p: "mine")
    assert srt_path.read_text(encoding="utf-8") == "new srt"
    assert txt_path.read_text(encoding="utf-8") == "my careful corrections\n"
    assert second.written == {srt_path: digest("new srt")}
    assert second.conflicts == [(txt_path, "changed since transcribed wrote it (left as it is)")]
    forced = write_outputs(source, inbox, newer, OutputConfig(overwrite=True), ours=first.written,
                           owner_of=lambda p: "mine")
    assert txt_path.read_text(encoding="utf-8") == "new txt" and forced.conflicts == []


def test_rewriting_identical_bytes_leaves_the_file_untouched(inbox: Path, source: Path) -> None:
    first = write_outputs(source, inbox, RENDERED[:1], OutputConfig(), ours={}, owner_of=nobody)
    path = source.parent / "talk.srt"
    inode = path.stat().st_ino
    again = write_outputs(source, inbox, RENDERED[:1], OutputConfig(), ours=first.written, owner_of=nobody)
    assert again.written == first.written and path.stat().st_ino == inode


def test_a_file_transcribed_did_not_write_is_a_conflict_unless_overwrite(inbox: Path, source: Path) -> None:
    users = source.parent / "talk.txt"
    users.write_text("the user's own notes\n", encoding="utf-8")
    report = write_outputs(source, inbox, RENDERED[:2], OutputConfig(), ours={}, owner_of=nobody)
    assert users.read_text(encoding="utf-8") == "the user's own notes\n"
    assert report.conflicts == [(users, "a file transcribed did not write is in the way")]
    assert list(report.written) == [source.parent / "talk.srt"]
    report = write_outputs(source, inbox, RENDERED[:2], OutputConfig(overwrite=True), ours={}, owner_of=nobody)
    assert users.read_text(encoding="utf-8") == "Hello.\n" and report.conflicts == []


def test_a_symlink_at_an_output_path_is_never_followed(tmp_path: Path, inbox: Path, source: Path) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("do not touch\n", encoding="utf-8")
    link = source.parent / "talk.txt"
    link.symlink_to(precious)
    report = write_outputs(source, inbox, RENDERED[1:2], OutputConfig(), ours={}, owner_of=nobody)
    assert report.conflicts == [(link, "a symbolic link is in the way (not followed)")]
    assert link.is_symlink() and precious.read_text(encoding="utf-8") == "do not touch\n"
    # A link replacing a file we wrote is not followed either.
    ours = {link: digest("Hello.\n")}
    report = write_outputs(source, inbox, RENDERED[1:2], OutputConfig(), ours=ours, owner_of=nobody)
    assert "symbolic link" in report.conflicts[0][1] and precious.read_text(encoding="utf-8") == "do not touch\n"
    # With overwrite, the link itself is replaced by a file; its target is still untouched.
    write_outputs(source, inbox, RENDERED[1:2], OutputConfig(overwrite=True), ours={}, owner_of=nobody)
    assert not link.is_symlink() and link.read_text(encoding="utf-8") == "Hello.\n"
    assert precious.read_text(encoding="utf-8") == "do not touch\n"


def test_a_directory_at_an_output_path_is_a_conflict(inbox: Path, source: Path) -> None:
    (source.parent / "talk.txt").mkdir()
    report = write_outputs(source, inbox, RENDERED[1:2], OutputConfig(overwrite=True), ours={}, owner_of=nobody)
    assert report.conflicts == [(source.parent / "talk.txt", "a directory is in the way")]


def test_two_sources_with_one_stem_never_overwrite_each_other(inbox: Path, source: Path) -> None:
    owners: dict[Path, str] = {}
    mp3 = write_outputs(source, inbox, RENDERED[:2], OutputConfig(), ours={}, owner_of=owners.get)
    owners.update(dict.fromkeys(mp3.written, "content-of-mp3"))
    wav = source.with_suffix(".wav")
    wav.write_bytes(b"other audio")
    other = [Rendered("srt", "en", "transcript", "wav srt"), Rendered("txt", "en", "transcript", "wav txt")]
    report = write_outputs(wav, inbox, other, OutputConfig(), ours={}, owner_of=owners.get)
    folder = source.parent
    assert list(report.written) == [folder / "talk.wav.srt", folder / "talk.wav.txt"]
    assert (folder / "talk.srt").read_text(encoding="utf-8") == RENDERED[0].text
    owners.update(dict.fromkeys(report.written, "content-of-wav"))
    # Re-rendering the wav keeps its names even after the mp3's outputs are gone.
    (folder / "talk.srt").unlink()
    (folder / "talk.txt").unlink()
    again = write_outputs(wav, inbox, other, OutputConfig(), ours=report.written, owner_of=owners.get)
    assert list(again.written) == [folder / "talk.wav.srt", folder / "talk.wav.txt"]
    # And the mp3 re-rendered still owns the plain names.
    back = write_outputs(source, inbox, RENDERED[:2], OutputConfig(), ours=mp3.written, owner_of=owners.get)
    assert list(back.written) == [folder / "talk.srt", folder / "talk.txt"]


def test_permissions_follow_the_umask_or_the_configured_mode(inbox: Path, source: Path) -> None:
    previous = os.umask(0o027)
    try:
        write_outputs(source, inbox, RENDERED[:1], OutputConfig(), ours={}, owner_of=nobody)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((source.parent / "talk.srt").stat().st_mode) == 0o640
    write_outputs(source, inbox, RENDERED[1:2], OutputConfig(mode=0o604), ours={}, owner_of=nobody)
    assert stat.S_IMODE((source.parent / "talk.txt").stat().st_mode) == 0o604


def test_atomic_write_handles_names_at_the_filesystem_limit(tmp_path: Path) -> None:
    path = tmp_path / ("é" * 127 + ".")  # 255 bytes
    atomic_write(path, b"x")
    assert path.read_bytes() == b"x" and os.listdir(tmp_path) == [path.name]


def test_a_source_named_near_the_limit_gets_outputs_with_a_shortened_unique_stem(inbox: Path) -> None:
    sources = [inbox / "talks" / (letter * 250 + ".mp3") for letter in "ab"]
    written = []
    for source in sources:
        report = write_outputs(source, inbox, RENDERED[:1], OutputConfig(name="{stem}.{lang}.{format}"),
                               ours={}, owner_of=nobody)
        assert report.conflicts == []
        (path,) = report.written
        assert len(os.fsencode(path.name)) <= 255 and path.name.endswith(".en.srt")
        written.append(path)
    assert written[0] != written[1]


def test_an_unwritable_output_directory_raises_and_writes_nothing(tmp_path: Path, inbox: Path, source: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(OutputWriteError) as caught:
        write_outputs(source, inbox, RENDERED, OutputConfig(directory=blocker), ours={}, owner_of=nobody)
    assert isinstance(caught.value, OSError) and caught.value.report.written == {}
    assert visible(source.parent) == ["talk.mp3"]


def test_move_source_mirrors_the_tree_and_never_replaces(tmp_path: Path, inbox: Path, source: Path) -> None:
    done = tmp_path / "done"
    first = move_source(source, inbox, done)
    assert first == done / "talks" / "talk.mp3" and first.read_bytes() == b"audio" and not source.exists()
    source.write_bytes(b"second")
    second = move_source(source, inbox, done)
    assert second == done / "talks" / "talk (1).mp3" and second.read_bytes() == b"second"
    assert first.read_bytes() == b"audio"


def test_move_source_works_across_filesystems(inbox: Path, source: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == source.stat().st_dev:
        pytest.skip("needs /dev/shm on another filesystem")
    done = shm / f"transcribed-test-{os.getpid()}"
    try:
        moved = move_source(source, inbox, done)
        assert moved.read_bytes() == b"audio" and not source.exists()
        assert [name for name in os.listdir(moved.parent)] == ["talk.mp3"]
    finally:
        for path in sorted(done.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        done.rmdir()

