"""No paying for subtitles that exist: which names beside `Movie.mkv` are subtitles in which language, and
the reason a file is not sent (pipeline/skip.py), tested by tables; the [skip] config; the probe's
subtitle streams; the ledger's `send_anyway` after a retry."""

from __future__ import annotations

from pathlib import Path

import pytest

from transcribed import config
from transcribed.errors import ConfigError
from transcribed.languages import canonical, english_name
from transcribed.ledger import Ledger
from transcribed.media.probe import parse_probe
from transcribed.pipeline.skip import subtitle_language, subtitle_reason, subtitles_beside

NAMES = [
    # name beside Movie.mkv -> language (None: not a subtitle of Movie, or no language said)
    ("Movie.en.srt", "en"),
    ("Movie.eng.srt", "en"),
    ("Movie.English.srt", "en"),
    ("Movie.english.srt", "en"),
    ("Movie.EN.SRT", "en"),
    ("movie.en.srt", "en"),                  # names compare without regard to case
    ("Movie.en.forced.srt", "en"),
    ("Movie.en.sdh.srt", "en"),
    ("Movie.en.cc.srt", "en"),
    ("Movie.en.hi.srt", "en"),               # "hi" beside a language is the hearing-impaired flag
    ("Movie.en.default.forced.srt", "en"),
    ("Movie.forced.en.srt", "en"),           # flags in any order
    ("Movie.English.SDH.vtt", "en"),
    ("Movie.en-US.srt", "en"),
    ("Movie.en.ass", "en"),
    ("Movie.en.ssa", "en"),
    ("Movie.en.vtt", "en"),
    ("Movie.en.sub", "en"),
    ("Movie.en.idx", "en"),
    ("Movie.fr.srt", "fr"),
    ("Movie.fre.srt", "fr"),                 # ISO 639-2/B
    ("Movie.fra.srt", "fr"),                 # ISO 639-2/T
    ("Movie.French.srt", "fr"),
    ("Movie.de.srt", "de"),
    ("Movie.ger.srt", "de"),
    ("Movie.deu.forced.ass", "de"),
    ("Movie.German.srt", "de"),
    ("Movie.pt-BR.srt", "pt"),
    ("Movie.pt_BR.srt", "pt"),
    ("Movie.chi.srt", "zh"),
    ("Movie.zho.srt", "zh"),
    ("Movie.hi.srt", "hi"),                  # alone, "hi" is Hindi
    ("Movie.hin.sdh.srt", "hi"),
    ("Movie.srt", None),                     # no language: unknown, does not count
    ("Movie.forced.srt", None),
    ("Movie.sdh.srt", None),
    ("Movie.en.fr.srt", None),               # two languages: ambiguous
    ("Movie.und.srt", None),                 # "undetermined"
    ("Movie.xx.srt", None),
    ("Movie.en.txt", None),                  # not a subtitle extension
    ("Movie.en.json", None),
    ("Movie.en.mkv", None),
    ("Movie.en", None),
    ("Movie.mkv", None),
    ("Movie.Part2.en.srt", None),            # another video's subtitle
    ("Movie 2.en.srt", None),
    ("Movie2.en.srt", None),
    ("Movies.en.srt", None),
    ("Other.en.srt", None),
    ("Movie..srt", None),
    ("Movie.en..srt", None),
    (".en.srt", None),
]


@pytest.mark.parametrize(("name", "language"), NAMES)
def test_subtitle_names_media_servers_pick_up(name: str, language: str | None) -> None:
    assert subtitle_language("Movie.mkv", name) == language


@pytest.mark.parametrize(("media", "name", "language"), [
    ("Show.S01E02.mkv", "Show.S01E02.en.srt", "en"),           # dots in the stem
    ("Show.S01E02.mkv", "Show.S01E02.srt", None),
    ("Show.S01E02.mkv", "Show.S01E03.en.srt", None),
    ("Show.S01E02.mkv", "Show.S01.en.srt", None),
    ("Film (2001).mp4", "Film (2001).eng.forced.srt", "en"),
    ("talk.wav", "talk.en.vtt", "en"),
    ("noext", "noext.en.srt", "en"),
])
def test_the_stem_is_the_media_name_without_its_extension(media: str, name: str, language: str | None) -> None:
    assert subtitle_language(media, name) == language


REASONS = [
    # beside Film.mkv, embedded tags, wanted -> reason
    (["Film.en.srt"], [], ["en"], "has English subtitles: Film.en.srt"),
    (["Film.eng.forced.ass"], [], ["en"], "has English subtitles: Film.eng.forced.ass"),
    (["Film.English.srt"], [], ["eng"], "has English subtitles: Film.English.srt"),
    (["Film.fr.srt"], [], ["en"], None),
    (["Film.fr.srt"], [], ["en", "fr"], "has French subtitles: Film.fr.srt"),
    (["Film.fre.srt"], [], ["fra"], "has French subtitles: Film.fre.srt"),
    (["Film.srt"], [], ["en"], None),                           # no language in the name: does not count
    (["Film.en.srt"], [], [], None),                            # nothing wanted: off
    ([], ["eng"], ["en"], "has an embedded English subtitle stream"),
    ([], ["ger"], ["de"], "has an embedded German subtitle stream"),
    ([], ["fre"], ["en"], None),
    ([], [None], ["en"], None),                                 # untagged stream: unknown language
    ([], ["und"], ["en"], None),
    ([], ["en"], ["en"], "has an embedded English subtitle stream"),
    (["Film.fr.srt", "Film.en.srt"], ["eng"], ["en", "fr"], "has English subtitles: Film.en.srt"),  # by name
    (["Film.en.srt"], ["eng"], ["en"], "has English subtitles: Film.en.srt"),  # external named first
    (["Other.en.srt"], [], ["en"], None),
    ([], [], ["en"], None),
]


@pytest.mark.parametrize(("beside", "embedded", "wanted", "reason"), REASONS)
def test_reason_a_file_is_not_sent(beside: list[str], embedded: list[str | None], wanted: list[str],
                                   reason: str | None) -> None:
    assert subtitle_reason("Film.mkv", beside, embedded, wanted) == reason


def test_only_subtitles_of_the_file_and_not_ours_are_listed(tmp_path: Path) -> None:
    source = tmp_path / "Film.mkv"
    for name in ("Film.mkv", "Film.en.srt", "Film.fr.srt", "Film.srt", "Film.txt", "Other.en.srt", "Film.de.vtt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "Film.es.srt").mkdir()          # a folder with a subtitle's name is no subtitle
    ours = {tmp_path / "Film.de.vtt"}
    assert sorted(subtitles_beside(source, lambda path: path in ours)) == ["Film.en.srt", "Film.fr.srt"]


@pytest.mark.parametrize(("token", "code", "name"), [
    ("en", "en", "English"), ("eng", "en", "English"), ("ENG", "en", "English"), ("English", "en", "English"),
    ("fre", "fr", "French"), ("fra", "fr", "French"), ("ger", "de", "German"), ("deu", "de", "German"),
    ("pt-BR", "pt", "Portuguese"), ("jv", "jw", "Javanese"), ("per", "fa", "Persian"), ("Farsi", "fa", "Persian"),
    ("und", None, "und"), ("forced", None, "forced"), ("", None, ""),
])
def test_language_codes_and_names(token: str, code: str | None, name: str) -> None:
    assert canonical(token) == code
    assert english_name(token) == name


def test_skip_config_defaults_off_and_takes_codes_or_names() -> None:
    assert config.parse({}, None, {})[0].skip.subtitle_languages == ()
    loaded, _ = config.parse({"skip": {"subtitle_languages": ["en", "fre", "German", "eng"]}}, None, {})
    assert loaded.skip.subtitle_languages == ("en", "fr", "de")
    assert config.to_toml_dict(loaded)["skip"] == {"subtitle_languages": ["en", "fr", "de"]}


@pytest.mark.parametrize(("table", "needle"), [
    ({"subtitle_languages": "en"}, "skip.subtitle_languages: expected a list of language codes"),
    ({"subtitle_languages": ["en", "klingon"]}, "skip.subtitle_languages: expected a list of language codes"),
    ({"subtitle_languages": [1]}, "skip.subtitle_languages: expected"),
    ({"languages": ["en"]}, "skip.languages: unknown key"),
])
def test_bad_skip_config_names_the_key(table: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.parse({"skip": table}, None, {})
    assert any(needle in problem for problem in caught.value.problems), caught.value.problems


def test_skip_keys_a_folder_leaves_out_are_inherited() -> None:
    base = config.SkipConfig(subtitle_languages=("en",))
    problems: list[str] = []
    assert config.parse_skip({}, problems, base=base) == base
    assert config.parse_skip({"subtitle_languages": []}, problems, base=base).subtitle_languages == ()
    config.parse_skip({"subtitle_languages": ["zz"]}, problems, where="/srv/tv/.transcribed.toml: skip", base=base)
    assert problems and problems[0].startswith("/srv/tv/.transcribed.toml: skip.subtitle_languages: expected")


def test_the_probe_reports_subtitle_streams_languages() -> None:
    data = {"format": {"duration": "10.0", "format_name": "matroska,webm"}, "streams": [
        {"index": 0, "codec_type": "video", "codec_name": "h264"},
        {"index": 1, "codec_type": "audio", "codec_name": "aac", "channels": 2, "tags": {"language": "eng"}},
        {"index": 2, "codec_type": "subtitle", "codec_name": "subrip", "tags": {"language": "fre"}},
        {"index": 3, "codec_type": "subtitle", "codec_name": "ass", "tags": {"language": "und"}},
        {"index": 4, "codec_type": "subtitle", "codec_name": "subrip"},
        {"index": 5, "codec_type": "subtitle", "codec_name": "hdmv_pgs_subtitle", "tags": {"language": "eng"}},
    ]}
    found = parse_probe(data, 1000)
    assert found.subtitle_languages == ("fre", None, None, "eng")
    assert [s.language for s in found.audio_streams] == ["eng"]


def test_retry_of_a_skipped_file_sends_it_anyway(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        ledger.record_seen("sha256:aa", str(tmp_path / "Film.mkv"), str(tmp_path), 1, 2, 3, 4)
        ledger.record_seen("sha256:bb", str(tmp_path / "Talk.mkv"), str(tmp_path), 1, 5, 3, 4)
        ledger.mark_skipped("sha256:aa", "has English subtitles: Film.en.srt")
        ledger.mark_failed("sha256:bb", "boom", retry_at=None)
        assert not ledger.send_anyway("sha256:aa")
        assert [e.key for e in ledger.skipped()] == ["sha256:aa"]
        ledger.reset_for_retry("sha256:aa")
        ledger.reset_for_retry("sha256:bb")
        assert ledger.send_anyway("sha256:aa")
        assert not ledger.send_anyway("sha256:bb")           # a failed file was not skipped: rules still apply
        assert ledger.get("sha256:aa").state == "discovered"  # type: ignore[union-attr]
        assert ledger.forget_path(str(tmp_path / "Film.mkv"))
        assert not ledger.send_anyway("sha256:aa")          # forgotten: seen again, it is new work
        assert ledger.verify() == []
