"""No paying for subtitles that exist (issue #14): with [skip] subtitle_languages, a file with a subtitle in
one of those languages beside it, or embedded in it, is never uploaded; `explain` says why, `status` counts
it, `retry` sends it anyway; the subtitles transcribed wrote itself never cause a skip.

The installed CLI as a subprocess against the emulator over real HTTP; uploads counted by the emulator.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from support import make_wav, run_cli, write_config

from transcribed.emulator import Emulator

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")

SRT = "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n"


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True,
                   timeout=120)


def uploaded(emulator: Emulator) -> list[str]:
    """The file names Gladia received, one per job."""
    return sorted(job["file"]["filename"] for job in emulator.jobs())  # type: ignore[index]


def explain(config: Path, path: Path) -> str:
    done = run_cli("explain", "--config", str(config), str(path))
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_files_with_subtitles_in_a_wanted_language_are_not_sent(tmp_path: Path, emulator: Emulator) -> None:
    inbox = tmp_path / "inbox"
    with_en = make_wav(inbox / "with_en.wav", seconds=1.0, tone=300)
    (inbox / "with_en.en.srt").write_text(SRT)
    with_fr = make_wav(inbox / "with_fr.wav", seconds=1.0, tone=350)
    (inbox / "with_fr.fr.srt").write_text(SRT)
    plain = make_wav(inbox / "plain.wav", seconds=1.0, tone=400)
    (inbox / "plain.srt").write_text(SRT)                      # no language in its name: does not count
    subtitles = tmp_path / "subtitles.srt"
    subtitles.write_text(SRT)
    embedded = inbox / "embedded.mkv"                          # an English subtitle stream muxed in
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=500:duration=2", "-i", str(subtitles), "-map", "0", "-map", "1",
           "-c:a", "aac", "-c:s", "srt", "-metadata:s:s:0", "language=eng", str(embedded))
    config = write_config(tmp_path / "config.toml", emulator.base_url, inbox, tmp_path / "ledger.db",
                          skip={"subtitle_languages": ["en"]},
                          output={"name": "{stem}.{lang}.{format}", "formats": ["srt", "txt"]})

    result = run_cli("once", "--config", str(config), timeout=240)
    assert result.returncode == 0, result.stdout[-3000:]
    assert uploaded(emulator) == ["plain.wav", "with_fr.wav"]   # nothing of with_en.wav nor embedded.mkv
    assert emulator.counters().get("files_uploaded") == 2
    assert (inbox / "with_fr.en.srt").is_file() and (inbox / "plain.en.srt").is_file()
    assert not (inbox / "with_en.en.txt").exists() and not (inbox / "embedded.en.txt").exists()
    assert "has English subtitles: with_en.en.srt" in explain(config, with_en)
    assert "has an embedded English subtitle stream" in explain(config, embedded)
    assert "state done" in explain(config, plain)
    status = json.loads(run_cli("status", "--config", str(config), "--json").stdout)
    assert status["counts"]["skipped"] == 2 and status["counts"]["done"] == 2
    reasons = {Path(item["path"]).name: item["reason"] for item in status["skipped"]}
    assert reasons == {"with_en.wav": "has English subtitles: with_en.en.srt",
                       "embedded.mkv": "has an embedded English subtitle stream"}
    assert "skipped 2" in run_cli("status", "--config", str(config)).stdout

    # A second run: nothing new, nothing sent; transcribed's own plain.en.srt does not make plain.wav skipped.
    again = run_cli("once", "--config", str(config), timeout=240)
    assert again.returncode == 0, again.stdout[-3000:]
    assert len(uploaded(emulator)) == 2
    assert "state done" in explain(config, plain) and "state done" in explain(config, with_fr)

    # `retry` sends a skipped file anyway.
    retried = run_cli("retry", "--config", str(config), str(with_en))
    assert retried.returncode == 0 and "queued again" in retried.stdout, retried.stderr
    result = run_cli("once", "--config", str(config), timeout=240)
    assert result.returncode == 0, result.stdout[-3000:]
    assert uploaded(emulator) == ["plain.wav", "with_en.wav", "with_fr.wav"]
    assert (inbox / "with_en.en.txt").is_file()
    assert "state done" in explain(config, with_en)


def test_subtitles_transcribed_wrote_never_cause_a_skip(tmp_path: Path, emulator: Emulator) -> None:
    inbox = tmp_path / "inbox"
    film = make_wav(inbox / "Film.wav", seconds=1.0, tone=300)
    config = write_config(tmp_path / "config.toml", emulator.base_url, inbox, tmp_path / "ledger.db",
                          skip={"subtitle_languages": ["en"]},
                          output={"name": "{stem}.{lang}.{format}", "formats": ["srt", "txt"]})
    assert run_cli("once", "--config", str(config), timeout=240).returncode == 0
    assert (inbox / "Film.en.srt").is_file()                   # transcribed's own English subtitle
    assert uploaded(emulator) == ["Film.wav"]

    # The file is replaced by a new cut (new content): transcribed again, its own Film.en.srt ignored.
    make_wav(film, seconds=1.5, tone=330)
    result = run_cli("once", "--config", str(config), timeout=240)
    assert result.returncode == 0, result.stdout[-3000:]
    assert uploaded(emulator) == ["Film.wav", "Film.wav"]
    lines = explain(config, film)
    assert "state done" in lines and "skipped" not in lines

    # Forgotten and seen again: a re-run, not a skip.
    assert run_cli("forget", "--config", str(config), str(film)).returncode == 0
    assert run_cli("once", "--config", str(config), timeout=240).returncode == 0
    assert uploaded(emulator) == ["Film.wav", "Film.wav", "Film.wav"]
    status = json.loads(run_cli("status", "--config", str(config), "--json").stdout)
    assert status["counts"]["skipped"] == 0
