"""Outputs belong to their source path, and a source claims its whole set at once (issue 12, parts 2 and 3).

The installed `transcribed` against the emulator over real HTTP: a file replaced in place gets its new
transcript at the usual names (`talk.txt`), never `talk.wav.txt` beside a stale `talk.txt`; two same-stem
files dropped together each get a complete set of their own, never a mix, with nothing stale left over.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from support import DaemonProcess, make_wav, run_cli, wait_until, write_config

from transcribed.emulator import Emulator, EmulatorSettings

FORMATS = ("txt", "srt", "vtt", "json", "md")


def job_ids(emulator: Emulator) -> dict[str, str]:
    """job id -> the audio's duration as the emulator saw it (to tell recordings apart)."""
    return {str(job["id"]): str(job.get("file", {}).get("filename"))  # type: ignore[union-attr]
            for job in emulator.jobs()}


def set_holder(folder: Path, stem: str) -> str | None:
    """The job id whose transcript fills every output named `stem`.*, or None when they disagree."""
    body = json.loads((folder / f"{stem}.json").read_text())
    words = body["result"]["transcription"]["utterances"][0]["text"].split()[:6]
    for fmt in FORMATS:
        text = " ".join((folder / f"{stem}.{fmt}").read_text().replace("\\", "").split())
        if " ".join(words) not in text:
            return None
    return str(body["id"])


def test_a_file_replaced_in_place_gets_its_new_transcript_at_the_usual_names(tmp_path: Path,
                                                                             emulator: Emulator) -> None:
    inbox = tmp_path / "inbox"
    talk = make_wav(inbox / "talk.wav", seconds=1.5, tone=300)
    config = write_config(tmp_path / "config.toml", emulator.base_url, inbox, tmp_path / "state" / "ledger.db",
                          output={"formats": list(FORMATS)})
    assert run_cli("once", "--config", str(config)).returncode == 0
    first = set_holder(inbox, "talk")
    assert first is not None
    # A new recording under the same name.
    make_wav(talk, seconds=2.5, tone=900)
    os.utime(talk, ns=(talk.stat().st_atime_ns, talk.stat().st_mtime_ns + 10_000_000))
    result = run_cli("once", "--config", str(config))
    assert result.returncode == 0, result.stdout[-3000:]
    second = set_holder(inbox, "talk")
    assert second is not None and second != first           # talk.* hold the new recording, all of them
    assert sorted(p.name for p in inbox.iterdir()) == sorted(["talk.wav", *(f"talk.{f}" for f in FORMATS)])
    assert emulator.counters()["jobs_created"] == 2

    # A transcript the user edited is theirs: left alone (a conflict, said by explain), the rest replaced.
    (inbox / "talk.txt").write_text("my corrected transcript\n")
    make_wav(talk, seconds=3.5, tone=500)
    os.utime(talk, ns=(talk.stat().st_atime_ns, talk.stat().st_mtime_ns + 20_000_000))
    assert run_cli("once", "--config", str(config)).returncode == 0
    assert (inbox / "talk.txt").read_text() == "my corrected transcript\n"
    third = json.loads((inbox / "talk.json").read_text())["id"]
    assert third not in (first, second)
    assert not any(p.name.startswith("talk.wav.") for p in inbox.iterdir())
    explained = run_cli("explain", "--config", str(config), str(talk)).stdout
    assert "talk.txt: changed since transcribed wrote it" in explained, explained


def test_same_stem_files_dropped_together_each_get_a_whole_set_of_their_own(tmp_path: Path) -> None:
    # Jobs are held until every one is created, then all finish at once: the shared job-list poll wakes every
    # worker together (per-job polls are rare here), so the pairs publish at the same moment.
    settings = EmulatorSettings(api_keys=None, processing_seconds=0.0, data_dir=tmp_path / "emulator")
    with Emulator(settings) as emulator:
        inbox = tmp_path / "inbox"
        inbox.mkdir()
        config = write_config(tmp_path / "config.toml", emulator.base_url, inbox, tmp_path / "state" / "ledger.db",
                              output={"formats": list(FORMATS)}, workers={"concurrency": 32},
                              gladia={"poll_initial_seconds": 10.0, "poll_max_seconds": 10.0})
        daemon = DaemonProcess(config, tmp_path / "run.log")
        wait_until(lambda: daemon.saw("daemon_started"), message="the daemon to start")
        pairs, rounds = 16, 3
        for round_number in range(rounds):
            staging = tmp_path / f"staging-{round_number}"
            folders = [f"round-{round_number}-pair-{number}" for number in range(pairs)]
            for number, name in enumerate(folders):
                for tone, suffix in ((300 + number, ".wav"), (700 + number, ".mp3")):
                    make_wav(staging / name / f"talk{suffix}", seconds=1.0, tone=tone + 2000 * round_number)
            emulator.set_faults(hold_jobs=True)
            created = emulator.counters().get("jobs_created", 0)
            for name in folders:
                (staging / name).rename(inbox / name)   # both files of a pair arrive at once
            expected = created + 2 * pairs
            wait_until(lambda expected=expected: emulator.counters().get("jobs_created", 0) == expected,
                       message="every job of the round created")
            emulator.set_faults(hold_jobs=False)
            wait_until(lambda expected=expected: sum(1 for e in daemon.events()
                                                     if e.get("event") == "transcript_written") >= expected,
                       timeout=120, message="every file of the round transcribed")
        assert daemon.stop() == 0
        assert emulator.counters()["jobs_created"] == 2 * pairs * rounds
        for folder in sorted(p for p in inbox.iterdir() if p.is_dir()):
            names = {p.name for p in folder.iterdir()}
            other = "talk.mp3" if "talk.mp3.json" in names else "talk.wav"
            assert names == {"talk.wav", "talk.mp3", *(f"talk.{f}" for f in FORMATS),
                             *(f"{other}.{f}" for f in FORMATS)}, (folder.name, sorted(names))
            plain, alternate = set_holder(folder, "talk"), set_holder(folder, other)
            assert plain is not None and alternate is not None and plain != alternate, (folder.name, sorted(names))
