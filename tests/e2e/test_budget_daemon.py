"""The audio budget end to end (issue 16): many workers racing for the last minutes of a day's budget never
overshoot it together; the files that do not fit wait, say so in `status` and `explain`, and go when the
clock passes local midnight. Only the clock is faked (TRANSCRIBED_FAKE_NOW_FILE, read by the CLI)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from support import DaemonProcess, make_wav, run_cli, wait_until, write_config

from transcribed.emulator import Emulator

ZONE = "JST-9"               # a POSIX TZ (no tz database needed), not the test machine's zone: TZ is followed
TOKYO = timezone(timedelta(hours=9))
BUDGET_HOURS = 0.02          # 72 s
DURATIONS = [5.0 + i for i in range(12)]     # 5..16 s: 126 s in all, more than a day's budget, less than two


def set_clock(path: Path, moment: datetime) -> None:
    path.write_text(f"{moment.timestamp():.3f}\n")


def audio_of(jobs: list[dict[str, Any]]) -> float:
    return sum(float(job["file"]["audio_duration"]) for job in jobs)


def status(config: Path, env: dict[str, str]) -> dict[str, Any]:
    result = run_cli("status", "--json", "--config", str(config), **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_day_budget_is_never_exceeded_and_waiting_files_go_after_midnight(tmp_path: Path,
                                                                            emulator: Emulator) -> None:
    inbox = tmp_path / "inbox"
    sources = [make_wav(inbox / f"talk-{i:02d}.wav", seconds=seconds, tone=180 + 41 * i)
               for i, seconds in enumerate(DURATIONS)]
    config = write_config(tmp_path / "config.toml", emulator.base_url, inbox, tmp_path / "state" / "ledger.db",
                          workers={"concurrency": 8}, budget={"daily_audio_hours": BUDGET_HOURS})
    clock = tmp_path / "now"
    evening = datetime(2026, 12, 7, 23, 50, tzinfo=TOKYO)
    set_clock(clock, evening)
    env = {"TRANSCRIBED_FAKE_NOW_FILE": str(clock), "TZ": ZONE}
    daemon = DaemonProcess(config, tmp_path / "daemon.log", **env)

    def settled() -> dict[str, Any] | None:
        report = status(config, env)
        counts = report["counts"]
        if counts.get("done", 0) + counts.get("waiting", 0) == len(sources) and not report["in_flight"]:
            return report
        return None

    report = wait_until(settled, timeout=120, interval=0.5, message="every file done or waiting")
    first_day = emulator.jobs()
    limit = BUDGET_HOURS * 3600
    assert audio_of(first_day) <= limit + 1e-6
    assert audio_of(first_day) > limit - max(DURATIONS)     # the budget was used, not left idle
    waiting = report["counts"]["waiting"]
    assert waiting == len(sources) - len(first_day) > 0
    assert all(item["reason"].startswith("waiting for tomorrow's budget:") for item in report["waiting"])
    assert report["budget"]["day"] == "2026-12-07"
    assert report["budget"]["today_seconds"] == round(audio_of(first_day), 3)
    assert report["budget"]["today_left_seconds"] == round(limit - audio_of(first_day), 3)
    assert report["failures"] == [] and report["retrying"] == []
    done = {Path(job["file"]["filename"]).stem for job in first_day}
    held = next(source for source in sources if source.stem not in done)
    assert not held.with_suffix(".txt").exists()
    explained = run_cli("explain", "--config", str(config), str(held), **env).stdout
    assert "waiting for tomorrow's budget" in explained and f"of {BUDGET_HOURS:g} h" in explained
    text = run_cli("status", "--config", str(config), **env).stdout
    assert "today" in text and "this month" in text and "in all" in text and "waiting" in text

    set_clock(clock, evening + timedelta(minutes=10, seconds=5))       # 00:00:05 on the 8th, in Tokyo
    wait_until(lambda: all(source.with_suffix(".txt").exists() for source in sources), timeout=120,
               message="the waiting files transcribed after midnight")
    second_day = [job for job in emulator.jobs() if job["id"] not in {j["id"] for j in first_day}]
    assert len(first_day) + len(second_day) == len(sources) == emulator.counters()["jobs_created"]
    assert audio_of(second_day) <= limit + 1e-6
    after = status(config, env)["budget"]
    assert after["day"] == "2026-12-08"
    assert after["today_seconds"] == round(audio_of(second_day), 3)
    assert after["total_seconds"] == round(sum(DURATIONS), 3)
    assert daemon.saw("budget_period_started")
    assert daemon.stop() == 0


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_parts_of_a_split_recording_count_as_their_audio(tmp_path: Path, emulator: Emulator) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    long = inbox / "long.wav"
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "sine=frequency=300:duration=40", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono:d=4", "-f",
                    "lavfi", "-i", "sine=frequency=500:duration=40", "-filter_complex",
                    "[0][1][2]concat=n=3:v=0:a=1", "-ar", "8000", "-ac", "1", str(long)], check=True, timeout=120)
    budget_hours = 0.015     # 54 s: one ~42 s part fits a day, not two
    config = write_config(tmp_path / "config.toml", emulator.base_url, inbox, tmp_path / "state" / "ledger.db",
                          media={"max_duration_minutes": 1.0}, budget={"daily_audio_hours": budget_hours})
    clock = tmp_path / "now"
    evening = datetime(2026, 12, 7, 23, 50, tzinfo=TOKYO)
    set_clock(clock, evening)
    env = {"TRANSCRIBED_FAKE_NOW_FILE": str(clock), "TZ": ZONE}
    daemon = DaemonProcess(config, tmp_path / "daemon.log", **env)
    report = wait_until(lambda: (r := status(config, env))["waiting"] and r, timeout=120, interval=0.5,
                        message="the second part waiting")
    assert [Path(item["path"]).name for item in report["waiting"]] == ["long.wav"]
    assert report["waiting"][0]["reason"].startswith("waiting for tomorrow's budget")
    first_day = emulator.jobs()
    assert len(first_day) == 1 and audio_of(first_day) <= budget_hours * 3600
    assert not (inbox / "long.txt").exists()
    set_clock(clock, evening + timedelta(minutes=10, seconds=5))
    wait_until(lambda: (inbox / "long.txt").exists(), timeout=120, message="the stitched transcript")
    assert emulator.counters()["jobs_created"] == 2
    second_day = [job for job in emulator.jobs() if job["id"] != first_day[0]["id"]]
    assert audio_of(second_day) <= budget_hours * 3600
    assert status(config, env)["budget"]["total_seconds"] == pytest.approx(audio_of(emulator.jobs()), abs=1e-2)
    assert daemon.stop() == 0


def test_a_crash_between_reservation_and_job_neither_leaks_nor_counts_twice(tmp_path: Path,
                                                                            emulator: Emulator) -> None:
    inbox = tmp_path / "inbox"
    source = make_wav(inbox / "talk.wav", seconds=20.0)
    config = write_config(tmp_path / "config.toml", emulator.base_url, inbox, tmp_path / "state" / "ledger.db",
                          budget={"daily_audio_hours": 0.01})     # 36 s: room for one 20 s file, not two
    crashed = run_cli("once", "--config", str(config), TRANSCRIBED_CRASH_AT="after_intent")
    assert crashed.returncode == 97, crashed.stdout[-2000:]
    reserved = status(config, {})["budget"]
    assert reserved["reserved_seconds"] == pytest.approx(20.0, abs=0.01)   # held while the outcome is unknown
    result = run_cli("once", "--config", str(config))
    assert result.returncode == 0, result.stdout[-3000:]
    assert source.with_suffix(".txt").exists()
    after = status(config, {})["budget"]
    assert (after["jobs_created"], after["reserved_seconds"]) == (1, 0)
    assert after["today_seconds"] == pytest.approx(20.0, abs=0.01) == after["total_seconds"]
    assert emulator.counters()["jobs_created"] == 1


def test_a_file_larger_than_the_whole_budget_waits_until_a_reload_raises_it(tmp_path: Path,
                                                                          emulator: Emulator) -> None:
    inbox = tmp_path / "inbox"
    source = make_wav(inbox / "talk.wav", seconds=5.0)
    config_path = tmp_path / "config.toml"
    config = write_config(config_path, emulator.base_url, inbox, tmp_path / "state" / "ledger.db",
                          budget={"daily_audio_hours": 0.001})      # 3.6 s
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    report = wait_until(lambda: (r := status(config, {}))["waiting"] and r, timeout=60, interval=0.3,
                        message="the file waiting")
    assert "more than the whole daily budget" in report["waiting"][0]["reason"]
    assert emulator.counters().get("files_uploaded", 0) == 0          # known too long: nothing uploaded
    write_config(config_path, emulator.base_url, inbox, tmp_path / "state" / "ledger.db",
                 budget={"daily_audio_hours": 1.0})
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: source.with_suffix(".txt").exists(), timeout=60, message="the transcript after the reload")
    assert emulator.counters()["jobs_created"] == 1
    assert daemon.stop() == 0


def test_a_worst_case_reservation_given_back_lets_a_waiting_file_go_the_same_day(tmp_path: Path,
                                                                               emulator: Emulator) -> None:
    """Link files have no duration before their job: each reserves Gladia's worst case (135 minutes). Once the
    first job reports its real duration, what it gave back lets the second go at once, not tomorrow."""
    import http.server
    import threading

    site = tmp_path / "site"
    make_wav(site / "one.wav", seconds=3.0, tone=420)
    make_wav(site / "two.wav", seconds=3.0, tone=840)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(site), **kwargs)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        inbox = tmp_path / "inbox"
        inbox.mkdir()
        config = write_config(tmp_path / "config.toml", emulator.base_url, inbox, tmp_path / "state" / "ledger.db",
                              workers={"concurrency": 2}, budget={"daily_audio_hours": 2.3})   # one worst case fits
        emulator.set_faults(hold_jobs=True)       # the first job runs on while the second asks for its share
        daemon = DaemonProcess(config, tmp_path / "daemon.log")
        base = f"http://127.0.0.1:{server.server_address[1]}"
        (inbox / "One.url").write_text(f"[InternetShortcut]\r\nURL={base}/one.wav\r\n")
        (inbox / "Two.url").write_text(f"[InternetShortcut]\r\nURL={base}/two.wav\r\n")
        wait_until(lambda: daemon.saw("budget_wait"), message="the second link waiting for the budget")
        wait_until(lambda: len(emulator.jobs()) == 1, message="the first link's job created")
        emulator.set_faults(hold_jobs=False)
        wait_until(lambda: (inbox / "One.txt").exists() and (inbox / "Two.txt").exists(), timeout=120,
                   message="both links transcribed today")
        assert daemon.saw("budget_holds_lifted")
        assert daemon.stop() == 0
        assert len(emulator.jobs()) == 2
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
