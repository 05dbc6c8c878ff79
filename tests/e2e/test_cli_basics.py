"""The installed command: help, version, config validation and one-off transcription (issue #2)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from support import KEY, make_wav, run_cli, write_config

from transcribed.emulator import Emulator

SUBCOMMANDS = [[], ["run"], ["once"], ["transcribe"], ["status"], ["explain"], ["retry"], ["forget"], ["render"],
               ["config"], ["config", "check"], ["config", "init"], ["config", "show"], ["emulator"]]


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("transcribed ")


@pytest.mark.parametrize("words", SUBCOMMANDS, ids=lambda w: " ".join(w) or "top")
def test_help_on_every_subcommand(words: list[str]) -> None:
    result = run_cli(*words, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: transcribed" in result.stdout and "--config" in result.stdout


def test_bad_config_lists_every_problem_and_exits_78(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[inbox]\nsettle_seconds = "soon"\nbogus = 1\n[workers]\nconcurrency = -1\n')
    result = run_cli("config", "check", "--config", str(config))
    assert result.returncode == 78
    for key in ("inbox.settle_seconds", "inbox.bogus", "workers.concurrency"):
        assert key in result.stderr
    assert "3 problems" in result.stderr
    # The same validation guards every command.
    assert run_cli("once", "--config", str(config)).returncode == 78


def test_config_init_then_check_then_show_masks_the_key(tmp_path: Path) -> None:
    target = tmp_path / "etc" / "config.toml"
    inbox = tmp_path / "inbox"
    assert run_cli("config", "init", str(target), "--inbox", str(inbox)).returncode == 0
    assert target.stat().st_mode & 0o077 == 0
    assert run_cli("config", "init", str(target)).returncode == 1      # never overwrites
    checked = run_cli("config", "check", "--config", str(target))
    assert checked.returncode == 0, checked.stderr
    shown = run_cli("config", "show", "--config", str(target))
    assert shown.returncode == 0 and str(inbox) in shown.stdout
    assert KEY not in shown.stdout and "********" in shown.stdout


def test_run_without_key_or_config_says_what_to_do(tmp_path: Path) -> None:
    result = run_cli("run", GLADIA_API_KEY="", TRANSCRIBED_CONFIG="")
    assert result.returncode == 78
    assert "transcribed run --emulator" in result.stderr and "GLADIA_API_KEY" in result.stderr


def test_transcribe_a_file_against_the_emulator(tmp_path: Path, emulator: Emulator) -> None:
    talk = make_wav(tmp_path / "talk.wav", seconds=3.0)
    config = write_config(tmp_path / "config.toml", emulator.base_url, tmp_path / "inbox", tmp_path / "ledger.db")
    result = run_cli("transcribe", "--config", str(config), str(talk))
    assert result.returncode == 0, result.stderr
    for suffix in ("txt", "srt", "vtt", "json"):
        assert (tmp_path / f"talk.{suffix}").is_file()
    body = json.loads((tmp_path / "talk.json").read_text())
    assert body["status"] == "done" and body["result"]["transcription"]["utterances"]
    assert "emulated" in (tmp_path / "talk.txt").read_text()
    assert emulator.counters()["jobs_created"] == 1
    assert KEY not in result.stdout + result.stderr


def test_transcribe_reports_each_failure_and_exits_1(tmp_path: Path, emulator: Emulator) -> None:
    good = make_wav(tmp_path / "good.wav")
    config = write_config(tmp_path / "config.toml", emulator.base_url, tmp_path / "inbox", tmp_path / "ledger.db")
    result = run_cli("transcribe", "--config", str(config), str(tmp_path / "missing.wav"), str(good))
    assert result.returncode == 1
    assert "missing.wav: failed" in result.stderr
    assert (tmp_path / "good.txt").is_file()


def test_transcribe_with_a_wrong_key_says_so(tmp_path: Path, emulator: Emulator) -> None:
    talk = make_wav(tmp_path / "talk.wav")
    config = write_config(tmp_path / "config.toml", emulator.base_url, tmp_path / "inbox", tmp_path / "ledger.db")
    result = run_cli("transcribe", "--config", str(config), str(talk), GLADIA_API_KEY="sk_wrong")
    assert result.returncode == 1 and "refused the API key" in result.stderr
    assert "sk_wrong" not in result.stderr


def test_transcribe_with_the_builtin_emulator_needs_no_key(tmp_path: Path) -> None:
    talk = make_wav(tmp_path / "talk.wav")
    result = run_cli("transcribe", "--emulator", "--format", "txt", "--format", "md", str(talk), GLADIA_API_KEY="")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "talk.txt").is_file() and (tmp_path / "talk.md").is_file()
    assert not (tmp_path / "talk.srt").exists()


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_transcribe_a_video_sends_only_its_audio(tmp_path: Path, emulator: Emulator) -> None:
    video = tmp_path / "clip.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:d=3",
                    "-f", "lavfi", "-i", "sine=d=3", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
                    "-shortest", str(video)], check=True, timeout=60)
    config = write_config(tmp_path / "config.toml", emulator.base_url, tmp_path / "inbox", tmp_path / "ledger.db")
    result = run_cli("transcribe", "--config", str(config), str(video))
    assert result.returncode == 0, result.stderr
    assert [job["file"]["filename"] for job in emulator.jobs()] == ["clip.ogg"]  # type: ignore[index]
    assert (tmp_path / "clip.txt").is_file()
