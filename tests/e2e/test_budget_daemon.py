"""The audio budget end to end (issue 16): many workers racing for the last minutes of a day's budget never
overshoot it together; the files that do not fit wait, say so in `status` and `explain`, and go when the
clock passes local midnight. Only the clock is faked (TRANSCRIBED_FAKE_NOW_FILE, read by the CLI)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from support import DaemonProcess, make_wav, run_cli, wait_until, write_config

from transcribed.emulator import Emulator

ZONE = "Asia/Tokyo"          # not the test machine's zone: the daemon must follow TZ
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
    evening = datetime(2026, 12, 7, 23, 50, tzinfo=ZoneInfo(ZONE))
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
