"""Per-folder settings (.transcribed.toml): nearest folder wins key by key, every problem at once with the
file and the key, cached by (mtime_ns, size, inode)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from transcribed import config
from transcribed.inbox.folders import FOLDER_SECTIONS, FolderSettings


def _main(inbox: Path, **sections: dict) -> config.Config:
    table = {"inbox": {"paths": [str(inbox)]}, "transcription": {"languages": ["en"], "code_switching": False,
                                                                 "diarization": True}, **sections}
    loaded, _ = config.parse(table, None, {})
    return loaded


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_nearest_folder_wins_key_by_key(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    top = _write(inbox / "teams" / ".transcribed.toml",
                 '[transcription]\nlanguages = ["fr"]\n[output]\nformats = ["txt"]\nlanguage_fallback = "fr"\n')
    deep = _write(inbox / "teams" / "sales" / ".transcribed.toml", '[output]\nformats = ["srt", "md"]\n')
    folders = FolderSettings(_main(inbox))

    outside = folders.for_path(inbox / "other" / "a.wav")
    assert outside.valid and outside.files == () and outside.request_tag == ""
    assert outside.config.output.formats == ("txt", "srt", "vtt", "json")

    effective = folders.for_path(inbox / "teams" / "sales" / "q3" / "call.wav")
    assert effective.valid and effective.files == (top, deep)
    assert effective.config.output.formats == ("srt", "md")                 # the deeper file
    assert effective.config.output.language_fallback == "fr"                # the shallower one
    request = effective.config.transcription.request
    assert request["language_config"] == {"languages": ["fr"], "code_switching": False}   # merged one level down
    assert request["diarization"] is True                                   # the main config
    assert effective.sources["output.formats"] == str(deep)
    assert effective.sources["transcription.language_config.languages"] == str(top)
    assert effective.request_tag and effective.request_tag != ""
    described = "\n".join(effective.describe())
    assert f'output.formats = ["srt", "md"]  ({deep})' in described
    assert "transcription.diarization = true  (main config" in described


def test_every_problem_at_once_with_the_file_and_the_key(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    bad = _write(inbox / "x" / ".transcribed.toml",
                 '[transcription]\nlanguages = "fr"\nspeakers = 2\naudio_url = "http://e.com"\n'
                 '[output]\nformats = ["doc"]\ndirectory = "/tmp/out"\n[inbox]\nrecursive = false\n')
    effective = FolderSettings(_main(inbox)).for_path(inbox / "x" / "a.wav")
    text = "\n".join(effective.problems)
    assert not effective.valid
    assert all(problem.startswith(f"{bad}: ") for problem in effective.problems)
    for expected in ("transcription.languages: expected a list", "transcription.speakers: unknown key",
                     "transcription.audio_url: set by transcribed itself", "output.formats: unknown format 'doc'",
                     "output.directory: not a per-folder key", "inbox: unknown section"):
        assert expected in text, expected


def test_combinations_are_checked_once_merged(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    _write(inbox / ".transcribed.toml", '[transcription]\ndiarization = false\n')
    main = _main(inbox, transcription={"diarization": True, "diarization_config": {"max_speakers": 3}})
    effective = FolderSettings(main).for_path(inbox / "a.wav")
    assert any("diarization_config: only used when transcription.diarization = true" in p
               for p in effective.problems)


def test_bad_toml_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    _write(inbox / "x" / ".transcribed.toml", "[transcription\nlanguages = [")
    effective = FolderSettings(_main(inbox)).for_path(inbox / "x" / "a.wav")
    assert len(effective.problems) == 1 and "not valid TOML" in effective.problems[0]


def test_parsed_once_per_file_version(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    path = _write(inbox / "x" / ".transcribed.toml", '[output]\nformats = ["txt"]\n')
    folders = FolderSettings(_main(inbox))
    first = folders.folder_files(inbox / "x" / "a.wav")
    assert folders.folder_files(inbox / "x" / "b.wav")[0] is first[0]      # cached: not parsed again
    path.write_text('[output]\nformats = ["srt"]\n')
    os.utime(path, ns=(1, 1))
    assert folders.for_path(inbox / "x" / "a.wav").config.output.formats == ("srt",)
    path.unlink()
    assert folders.for_path(inbox / "x" / "a.wav").files == ()


def test_the_same_settings_give_the_same_request_tag(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    _write(inbox / "a" / ".transcribed.toml", '[transcription]\nlanguages = ["fr"]\n')
    _write(inbox / "b" / ".transcribed.toml", '[transcription]\nlanguage_config = {languages = ["fr"]}\n')
    _write(inbox / "c" / ".transcribed.toml", '[transcription]\nlanguages = ["en"]\n[output]\nformats = ["md"]\n')
    folders = FolderSettings(_main(inbox))
    tags = {name: folders.for_path(inbox / name / "f.wav").request_tag for name in "abc"}
    assert tags["a"] == tags["b"] != ""
    assert tags["c"] == ""            # the main config's request: output settings alone change no key


def test_sections_are_registered_generically() -> None:
    assert {"transcription", "output"} <= set(FOLDER_SECTIONS)


def test_a_folder_may_override_skip_subtitle_languages(tmp_path: Path) -> None:
    from transcribed.config import Config, SkipConfig
    from transcribed.inbox.folders import FolderSettings

    inbox = tmp_path / "inbox"
    (inbox / "films").mkdir(parents=True)
    (inbox / "films" / ".transcribed.toml").write_text('[skip]\nsubtitle_languages = ["eng", "French"]\n')
    (inbox / "bad").mkdir()
    (inbox / "bad" / ".transcribed.toml").write_text('[skip]\nsubtitle_languages = ["klingon"]\n')
    base = Config(skip=SkipConfig(subtitle_languages=("de",)))
    base = dataclasses.replace(base, inbox=dataclasses.replace(base.inbox, paths=(inbox,)))
    folders = FolderSettings(base)
    films = folders.for_path(inbox / "films" / "Film.mkv")
    assert films.valid and films.config.skip.subtitle_languages == ("en", "fr")
    assert folders.for_path(inbox / "Other.mkv").config.skip.subtitle_languages == ("de",)
    bad = folders.for_path(inbox / "bad" / "Film.mkv")
    assert not bad.valid and any("skip.subtitle_languages" in problem for problem in bad.problems)


def test_explain_says_when_no_transcription_setting_is_made(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    loaded, _ = config.parse({"inbox": {"paths": [str(inbox)]}}, None, {})
    described = FolderSettings(loaded).for_path(inbox / "a.wav").describe()
    assert "transcription: nothing set (Gladia's defaults)" in described
    assert any(line.startswith("output.formats = ") for line in described)
