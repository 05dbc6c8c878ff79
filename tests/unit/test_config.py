"""Config: the public contract. Every problem reported at once, with its dotted key."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from transcribed import config
from transcribed.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def problems_of(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config.parse(tomllib.loads(text), None, environ or {})
    return caught.value.problems


def test_defaults_need_no_file() -> None:
    loaded, warnings = config.parse({}, None, {})
    assert loaded.inbox.settle_seconds == 5.0
    assert loaded.output.formats == ("txt", "srt", "vtt", "json")
    assert loaded.workers.concurrency == 3
    assert loaded.gladia.api_key is None
    assert warnings == []


def test_every_problem_is_reported_at_once_with_its_dotted_key() -> None:
    found = problems_of("""
        [gladia]
        bogus = 1
        [inbox]
        settle_seconds = "five"
        observer = "inotify"
        [output]
        formats = ["txt", "docx"]
        [workers]
        concurrency = 0
        [nonsense]
    """)
    joined = "\n".join(found)
    for key in ("gladia.bogus", "inbox.settle_seconds", "inbox.observer", "output.formats",
                "workers.concurrency", "nonsense"):
        assert key in joined
    assert len(found) == 6
    assert any("expected a number" in p for p in found)
    assert any('"auto", "native", "polling"' in p for p in found)


def test_transcription_fields_follow_gladias_schema() -> None:
    found = problems_of("""
        [transcription]
        diarization = "yes"
        subtitles = true
        subtitles_config = { maximum_rows_per_caption = 9, formats = ["ass"] }
        model = "whisper"
        languages = ["en", "xx"]
        audio_url = "https://example.com/a.mp3"
    """)
    joined = "\n".join(found)
    assert "transcription.diarization: expected true or false" in joined
    assert "transcription.subtitles_config.maximum_rows_per_caption: expected at most 5" in joined
    assert "transcription.subtitles_config.formats[0]" in joined
    assert "transcription.model" in joined
    assert "languages[1]" in joined
    assert "transcription.audio_url: set by transcribed itself" in joined


@pytest.mark.parametrize(("text", "needle"), [
    ('model = "solaria-3"', "needs exactly one language"),
    ("translation = true", "translation_config.target_languages: required"),
    ('summarization_config = { type = "concise" }', "only used when transcription.summarization = true"),
    ("diarization = true\ndiarization_config = { min_speakers = 4, max_speakers = 2 }", "min_speakers"),
    ("custom_spelling = true", "spelling_dictionary: required"),
])
def test_invalid_combinations_are_caught_at_config_time(text: str, needle: str) -> None:
    assert any(needle in p for p in problems_of("[transcription]\n" + text))


def test_valid_transcription_becomes_the_request_body() -> None:
    loaded, _ = config.parse(tomllib.loads("""
        [transcription]
        languages = ["en"]
        code_switching = false
        diarization = true
        custom_vocabulary = ["Gladia", "Solaria"]
        translation = true
        translation_config = { target_languages = ["fr", "de"] }
    """), None, {})
    request = dict(loaded.transcription.request)
    assert request["language_config"] == {"languages": ["en"], "code_switching": False}
    assert request["custom_vocabulary"] is True
    assert request["custom_vocabulary_config"] == {"vocabulary": ["Gladia", "Solaria"]}
    assert request["translation_config"]["target_languages"] == ["fr", "de"]


def test_key_sources_in_order(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("from-file\n")
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "gladia-api-key").write_text("from-credential")
    environ = {"GLADIA_API_KEY": "from-env", "CREDENTIALS_DIRECTORY": str(credentials)}
    loaded, _ = config.parse({"gladia": {"api_key_file": str(key_file)}}, None, environ)
    assert loaded.gladia.api_key is not None and loaded.gladia.api_key.reveal() == "from-credential"
    loaded, _ = config.parse({"gladia": {"api_key_file": str(key_file)}}, None, {"GLADIA_API_KEY": "from-env"})
    assert loaded.gladia.api_key is not None and loaded.gladia.api_key.reveal() == "from-file"
    loaded, _ = config.parse({}, None, environ)
    assert loaded.gladia.api_key is not None and loaded.gladia.api_key.reveal() == "from-credential"
    loaded, _ = config.parse({}, None, {"GLADIA_API_KEY": "from-env"})
    assert loaded.gladia.api_key is not None and loaded.gladia.api_key.reveal() == "from-env"


def test_key_never_shows_in_repr_or_show(tmp_path: Path) -> None:
    loaded, _ = config.parse({"gladia": {"api_key": "sk_canary_123456"}}, None, {})
    assert "sk_canary_123456" not in repr(loaded)
    assert "sk_canary_123456" not in str(config.to_toml_dict(loaded))


def test_key_in_a_world_readable_file_draws_a_warning_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[gladia]\napi_key = "sk_x_1234"\n')
    path.chmod(0o644)
    _, warnings = config.load(path, {})
    assert len(warnings) == 1 and str(path) in warnings[0]
    path.chmod(0o600)
    assert config.load(path, {})[1] == []


def test_explicit_config_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        config.load(tmp_path / "missing.toml", {})


def test_syntax_error_is_one_clear_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[inbox\npaths = 3\n")
    with pytest.raises(ConfigError) as caught:
        config.load(path, {})
    assert len(caught.value.problems) == 1 and "line 1" in caught.value.problems[0]


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[inbox]\npaths = ["inbox"]\n[ledger]\npath = "state/ledger.sqlite3"\n')
    loaded, _ = config.load(path, {})
    assert loaded.inbox.paths == (tmp_path / "inbox",)
    assert loaded.ledger.path == tmp_path / "state" / "ledger.sqlite3"


def test_output_template_and_mode() -> None:
    assert any("output.name" in p for p in problems_of('[output]\nname = "{stem}.txt"'))
    assert any("output.name" in p for p in problems_of('[output]\nname = "{stem}/{format}"'))
    assert any("output.mode" in p for p in problems_of('[output]\nmode = "rwx"'))
    assert any("done_directory" in p for p in problems_of('[output]\nafter = "move"'))
    loaded, _ = config.parse(tomllib.loads('[output]\nmode = "0640"\nname = "{stem}.{lang}.{format}"'), None, {})
    assert loaded.output.mode == 0o640


def _documented_keys() -> dict[str, set[str]]:
    """Keys in config.example.toml, commented-out ones included, by section."""
    keys: dict[str, set[str]] = {}
    section = ""
    for line in (ROOT / "config.example.toml").read_text().splitlines():
        if match := re.match(r"^\[(\w+)\]", line):
            section = match.group(1)
            keys.setdefault(section, set())
        elif match := re.match(r"^#?\s?(\w+)\s*=", line):
            keys.setdefault(section, set()).add(match.group(1))
    return keys


def test_example_config_loads_and_documents_every_field() -> None:
    loaded, _ = config.load(ROOT / "config.example.toml", {})
    assert loaded.output.formats == config.OutputConfig.formats
    documented = _documented_keys()
    for field in dataclasses.fields(config.Config):
        if field.name in ("source", "transcription"):
            continue
        section_type = field.type if isinstance(field.type, type) else getattr(config, str(field.type))
        names = {f.name for f in dataclasses.fields(section_type)}
        assert names <= documented[field.name], f"[{field.name}] undocumented: {names - documented[field.name]}"
        assert documented[field.name] <= names, f"[{field.name}] documents unknown keys"


def test_output_folders_and_ledger_must_be_outside_the_inboxes(tmp_path: Path) -> None:
    found = problems_of(f"""
        [inbox]
        paths = ["{tmp_path}"]
        [output]
        after = "move"
        done_directory = "{tmp_path}/done"
        [ledger]
        path = "{tmp_path}/ledger.sqlite3"
    """)
    assert any(p.startswith("output.done_directory") for p in found)
    assert any(p.startswith("ledger.path") for p in found)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_number_that_is_not_finite_is_refused_with_its_key(value: str) -> None:
    found = problems_of(f"[budget]\ndaily_audio_hours = {value}\n[inbox]\nsettle_seconds = {value}\n")
    assert any(problem.startswith("budget.daily_audio_hours") for problem in found), found
    assert any(problem.startswith("inbox.settle_seconds") for problem in found), found
