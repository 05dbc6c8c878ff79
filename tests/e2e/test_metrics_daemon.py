"""GET /metrics end to end (issue 16): what the daemon exposes equals what the emulator counted, the
ledger-backed counters survive a restart, and the Grafana dashboard uses only names a real scrape has."""

from __future__ import annotations

import json
import re
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from support import DaemonProcess, free_port, make_wav, wait_until, write_config

from transcribed.emulator import Emulator

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")



def scrape(port: int) -> tuple[dict[str, float], str]:
    """Every sample of GET /metrics as {'name{labels}': value}, and the raw text."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        match = SAMPLE.match(line)
        assert match, line
        samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return samples, text


def names_in(text: str) -> set[str]:
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


def up(port: int) -> bool:
    try:
        scrape(port)
    except (OSError, urllib.error.URLError):
        return False
    return True


def test_metrics_match_the_emulator_and_survive_a_restart(tmp_path: Path, emulator: Emulator) -> None:
    inbox = tmp_path / "inbox"
    sources = [make_wav(inbox / f"talk-{i}.wav", seconds=1.5 + i, tone=300 + 53 * i) for i in range(4)]
    port = free_port()
    config = write_config(tmp_path / "config.toml", emulator.base_url, inbox, tmp_path / "state" / "ledger.db",
                          metrics={"listen": f"127.0.0.1:{port}"}, budget={"daily_audio_hours": 1.0})
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    wait_until(lambda: up(port), timeout=60, message="/metrics answering")
    wait_until(lambda: all(s.with_suffix(".txt").exists() for s in sources), timeout=120, message="transcripts")
    wait_until(lambda: scrape(port)[0]['transcribed_files{state="done"}'] == len(sources), timeout=30,
               message="every file done in /metrics")
    samples, text = scrape(port)
    counted = emulator.counters()
    audio = sum(float(job["file"]["audio_duration"]) for job in emulator.jobs())
    assert samples["transcribed_jobs_created_total"] == counted["jobs_created"] == len(sources)
    assert samples["transcribed_audio_seconds_total"] == pytest.approx(audio, abs=1e-3)
    assert samples["transcribed_uploads_total"] == counted["files_uploaded"]
    assert samples["transcribed_upload_bytes_total"] == counted["bytes_uploaded"]
    for route, key in (("create", "POST /v2/pre-recorded"), ("upload", "POST /v2/upload")):
        answered = sum(count for name, count in counted.items() if re.fullmatch(re.escape(key) + r" 2\d\d", name))
        assert samples[f'transcribed_api_requests_total{{route="{route}",status_class="2xx"}}'] == answered > 0
    assert samples["transcribed_jobs_in_flight"] == 0 and samples["transcribed_queue_depth"] == 0
    assert samples['transcribed_paused{reason="budget"}'] == 0
    assert samples['transcribed_budget_left_seconds{period="day"}'] == pytest.approx(3600 - audio, abs=1e-2)
    assert samples['transcribed_budget_left_seconds{period="month"}'] == float("inf")
    assert "# TYPE transcribed_jobs_created_total counter" in text
    assert "# TYPE transcribed_files gauge" in text

    # The dashboard shipped in the repository uses only names a real scrape has.
    dashboard = json.loads((ROOT / "contrib" / "grafana-dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    used = {name for expr in expressions for name in re.findall(r"\btranscribed_[a-z_]+\b", expr)}
    assert used and used <= names_in(text), used - names_in(text)
    for family in ("transcribed_jobs_created_total", "transcribed_audio_seconds_total", "transcribed_files",
                   "transcribed_upload_bytes_total", "transcribed_api_requests_total", "transcribed_paused",
                   "transcribed_budget_left_seconds"):
        assert family in used, family

    # Anything but GET /metrics is refused.
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=10)
    assert missing.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as posted:
        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/metrics", data=b"x"), timeout=10)
    assert posted.value.code == 405

    assert daemon.stop() == 0
    again = DaemonProcess(config, tmp_path / "daemon-2.log")
    wait_until(lambda: up(port), timeout=60, message="/metrics answering after the restart")
    restarted, _ = scrape(port)
    assert restarted["transcribed_jobs_created_total"] == len(sources)
    assert restarted["transcribed_audio_seconds_total"] == pytest.approx(audio, abs=1e-3)
    assert restarted["transcribed_uploads_total"] == 0        # this process uploaded nothing: nothing paid twice
    assert emulator.counters()["jobs_created"] == len(sources)
    assert again.stop() == 0


def test_a_metrics_address_in_use_is_a_clear_config_error(tmp_path: Path, emulator: Emulator) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path / "config.toml", emulator.base_url, inbox, tmp_path / "state" / "ledger.db",
                              metrics={"listen": f"127.0.0.1:{port}"})
        daemon = DaemonProcess(config, tmp_path / "daemon.log")
        assert daemon.wait(60) == 78
    assert f"cannot serve metrics on 127.0.0.1:{port} (metrics.listen)" in daemon.log_path.read_text()
