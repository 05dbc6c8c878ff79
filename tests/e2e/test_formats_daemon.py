"""Common recording formats are taken, TypeScript named .ts is set aside, other names are said once (issue 12.6).

The installed CLI against the emulator over real HTTP, with real media made by ffmpeg.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from support import DaemonProcess, run_cli, wait_until, write_config

from transcribed.emulator import Emulator

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
                                reason="ffmpeg and ffprobe are not installed")

TYPESCRIPT = "export const answer: number = 42;\nexport function greet(name: string): string {\n" \
             "  return `Hello, ${name}`;\n}\n"


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True,
                   timeout=120)


def tone(frequency: int) -> tuple[str, ...]:
    return ("-f", "lavfi", "-i", f"sine=frequency={frequency}:duration=2")


def amr_memo(path: Path) -> Path:
    """An AMR-NB phone memo written by hand (this ffmpeg has no AMR encoder): the "#!AMR" magic and 100
    frames of mode 12.2 (a header byte and 31 bytes each: 2 s), which ffmpeg decodes."""
    path.write_bytes(b"#!AMR\n" + b"".join(b"\x3c" + os.urandom(31) for _ in range(100)))
    return path


def make_recordings(inbox: Path) -> dict[str, Path]:
    """The real media the test drops, by name."""
    inbox.mkdir(parents=True, exist_ok=True)
    made = {name: inbox / name for name in ("call.webm", "talk.aiff", "rec.ts", "band.mka", "book.m4b",
                                            "memo.amr", "voice.wma", "camera.mts")}
    ffmpeg(*tone(300), "-c:a", "libopus", str(made["call.webm"]))
    ffmpeg(*tone(350), "-c:a", "pcm_s16be", str(made["talk.aiff"]))
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:duration=2", *tone(400), "-c:v", "mpeg2video",
           "-c:a", "mp2", "-shortest", "-f", "mpegts", str(made["rec.ts"]))
    ffmpeg(*tone(450), "-c:a", "flac", str(made["band.mka"]))
    ffmpeg(*tone(500), "-c:a", "aac", "-f", "ipod", str(made["book.m4b"]))
    amr_memo(made["memo.amr"])
    ffmpeg(*tone(550), "-c:a", "wmav2", str(made["voice.wma"]))
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:duration=2", *tone(600), "-c:v", "mpeg2video",
           "-c:a", "ac3", "-shortest", "-mpegts_m2ts_mode", "1", "-f", "mpegts", str(made["camera.mts"]))
    return made


def test_recording_formats_are_transcribed_and_typescript_is_set_aside(tmp_path: Path, emulator: Emulator) -> None:
    inbox = tmp_path / "inbox"
    made = make_recordings(inbox)
    typescript = inbox / "app.ts"
    typescript.write_text(TYPESCRIPT)
    (inbox / "notes.docx").write_bytes(b"PK\x03\x04 not media")
    (inbox / "agenda.pdf").write_bytes(b"%PDF-1.4 not media")
    config = write_config(tmp_path / "config.toml", emulator.base_url, inbox, tmp_path / "ledger.db")

    result = run_cli("once", "--config", str(config), timeout=240)
    assert result.returncode == 0, result.stdout[-3000:]    # nothing failed: app.ts is set aside, not failed

    for name, source in made.items():
        assert source.with_suffix(".txt").is_file(), f"no transcript for {name}"
    uploaded = sorted(str(job["file"]["filename"]) for job in emulator.jobs())  # type: ignore[index]
    # Gladia does not list these extensions (API.md §8): each is sent as its extracted audio.
    assert uploaded == sorted(f"{Path(name).stem}.ogg" for name in made)
    assert not typescript.with_suffix(".txt").exists()
    assert typescript.read_text() == TYPESCRIPT

    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    set_aside = [e for e in events if e.get("event") == "file_set_aside"]
    assert len(set_aside) == 1 and "not media" in set_aside[0]["reason"]
    assert not [e for e in events if e.get("level") in ("error", "critical")]
    passed = [e for e in events if e.get("event") == "files_passed_over"]
    assert len(passed) == 1, passed                         # once for the folder, not once per file
    assert (passed[0]["count"], passed[0]["example"], passed[0]["folder"]) == (2, "agenda.pdf", str(inbox))

    explained = run_cli("explain", "--config", str(config), str(typescript)).stdout
    assert "skipped: not media" in explained and "TypeScript" in explained
    docx = run_cli("explain", "--config", str(config), str(inbox / "notes.docx")).stdout
    assert "not a supported media extension" in docx


def test_a_running_daemon_says_once_per_folder_what_it_passed_over(tmp_path: Path, emulator: Emulator) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "minutes").mkdir(parents=True)
    (inbox / "notes.docx").write_bytes(b"PK\x03\x04 not media")
    (inbox / "minutes" / "b.odt").write_bytes(b"odt")
    (inbox / "minutes" / "a.odt").write_bytes(b"odt")
    config = write_config(tmp_path / "config.toml", emulator.base_url, inbox, tmp_path / "ledger.db")
    text = config.read_text()
    assert "rescan_seconds = 5.0" in text
    config.write_text(text.replace("rescan_seconds = 5.0", "rescan_seconds = 0.5"))   # many rescans, quickly
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        wait_until(lambda: sum(1 for e in daemon.events() if e.get("event") == "rescan_done") >= 4, 90,
                   message="four rescans")
        typescript = inbox / "app.ts"
        typescript.write_text(TYPESCRIPT)
        wait_until(lambda: daemon.saw("file_set_aside"), 60, message="app.ts set aside")
        (inbox / "minutes" / "c.odt").write_bytes(b"odt")
        wait_until(lambda: [e for e in daemon.events() if e.get("event") == "files_passed_over"
                            and e.get("count") == 3], 60, message="the new file passed over")
    finally:
        assert daemon.stop() == 0
    passed = [(e["folder"], e["count"], e["example"]) for e in daemon.events() if e.get("event") == "files_passed_over"]
    # The start scan says it once per folder; unchanged folders are not repeated by later rescans.
    assert sorted(passed) == sorted([(str(inbox), 1, "notes.docx"), (str(inbox / "minutes"), 2, "a.odt"),
                                     (str(inbox / "minutes"), 3, "a.odt")])
    assert emulator.counters().get("files_uploaded", 0) == 0 and emulator.jobs() == []
    explained = run_cli("explain", "--config", str(config), str(typescript)).stdout
    assert "skipped: not media" in explained
