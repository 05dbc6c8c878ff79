"""[media]: defaults follow Gladia's limits (API.md §2), bad values are reported with their dotted key."""

from __future__ import annotations

import textwrap
import tomllib
from pathlib import Path

import pytest

from transcribed import config
from transcribed.errors import ConfigError


def parse(text: str, path: Path | None = None) -> config.MediaConfig:
    loaded, _ = config.parse(tomllib.loads(textwrap.dedent(text)), path, {})
    return loaded.media


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config.parse(tomllib.loads(textwrap.dedent(text)), None, {})
    return caught.value.problems


def test_defaults_follow_gladia_limits() -> None:
    media = parse("")
    assert media.extract_audio == "auto"
    assert media.max_duration_minutes == 135.0
    assert media.max_upload_mb == 1000.0
    assert media.codec == "opus"
    assert media.audio_stream == ""
    assert media.temp_directory is None
    assert (media.ffmpeg, media.ffprobe) == ("ffmpeg", "ffprobe")


def test_every_key_is_read(tmp_path: Path) -> None:
    media = parse(f"""
        [media]
        extract_audio = "always"
        extract_threshold_mb = 20
        audio_stream = "fra"
        max_duration_minutes = 255
        max_upload_mb = 2000
        codec = "flac"
        bitrate_kbps = 48
        ffmpeg = "bin/ffmpeg"
        ffprobe = "/usr/local/bin/ffprobe"
        temp_directory = "{tmp_path}"
        probe_timeout_seconds = 5
    """, tmp_path / "config.toml")
    assert media == config.MediaConfig(
        extract_audio="always", extract_threshold_mb=20.0, audio_stream="fra", max_duration_minutes=255.0,
        max_upload_mb=2000.0, codec="flac", bitrate_kbps=48, ffmpeg=str(tmp_path / "bin" / "ffmpeg"),
        ffprobe="/usr/local/bin/ffprobe", temp_directory=tmp_path, probe_timeout_seconds=5.0)


@pytest.mark.parametrize("value", ["2", '"en"', '"pt-BR"', '"eng"', '""'])
def test_audio_stream_accepts_numbers_and_language_codes(value: str) -> None:
    parse(f"[media]\naudio_stream = {value}")


@pytest.mark.parametrize(("line", "key"), [
    ('extract_audio = "sometimes"', "media.extract_audio"),
    ("audio_stream = -1", "media.audio_stream"),
    ('audio_stream = "english please"', "media.audio_stream"),
    ("audio_stream = true", "media.audio_stream"),
    ("max_duration_minutes = 0", "media.max_duration_minutes"),
    ('codec = "wma"', "media.codec"),
    ("bitrate_kbps = 1", "media.bitrate_kbps"),
    ('ffmpeg = " "', "media.ffmpeg"),
    ("probe_timeout_seconds = 0", "media.probe_timeout_seconds"),
    ("loudness = 3", "media.loudness"),
])
def test_bad_values_are_reported_with_their_key(line: str, key: str) -> None:
    assert any(p.startswith(key) for p in problems_of(f"[media]\n{line}"))


def test_shown_config_has_the_media_section() -> None:
    shown = config.to_toml_dict(config.Config())
    assert shown["media"]["max_duration_minutes"] == 135.0
    assert "temp_directory" not in shown["media"]


def test_extracts_are_never_written_into_an_inbox(tmp_path: Path) -> None:
    # The watcher would take an extract written there for new media.
    found = problems_of(f'[inbox]\npaths = ["{tmp_path}"]\n[media]\ntemp_directory = "{tmp_path}/tmp"')
    assert any(p.startswith("media.temp_directory: expected a place outside the inboxes") for p in found)
