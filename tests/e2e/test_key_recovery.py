"""A refused key pauses new work and recovers by itself (issue 12, part 1).

The installed `transcribed run` against the emulator over real HTTP: a 401 pauses new work with one loud
`api_key_rejected`; `status` and `explain` say so; the key is checked by itself, at once when its file is
rewritten (no SIGHUP) and periodically otherwise; once Gladia accepts it, every waiting file completes with
exactly one paid job.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
from support import KEY, DaemonProcess, make_wav, run_cli, wait_until, write_config

from transcribed.emulator import Emulator, EmulatorSettings

FORMATS = ("txt", "srt", "vtt", "json")


def status(config: Path) -> dict[str, Any]:
    result = run_cli("status", "--json", "--config", str(config))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def creates_per_file(emulator: Emulator) -> dict[str, int]:
    counts: dict[str, int] = {}
    for job in emulator.jobs():
        name = (job.get("file") or {}).get("filename", "?")  # type: ignore[union-attr]
        counts[name] = counts.get(name, 0) + 1
    return counts


def complete(sources: list[Path]) -> bool:
    return all(source.with_suffix("." + fmt).is_file() for source in sources for fmt in FORMATS)


def key_file(tmp_path: Path, key: str) -> Path:
    path = tmp_path / "gladia-key"
    path.write_text(key + "\n")
    path.chmod(0o600)
    return path


def test_a_rewritten_key_file_resumes_the_work_without_a_reload(tmp_path: Path, emulator: Emulator) -> None:
    inbox = tmp_path / "inbox"
    sources = [make_wav(inbox / f"talk-{i}.wav", seconds=1.0, tone=300 + 50 * i) for i in range(2)]
    wrong = "sk_e2e_refused_" + os.urandom(6).hex()
    keys = key_file(tmp_path, wrong)
    # A long first interval: only the file's change can make the key be checked within the test.
    config = write_config(tmp_path / "config.toml", emulator.base_url, inbox, tmp_path / "state" / "ledger.db",
                          gladia={"api_key_file": str(keys), "key_check_seconds": 600.0})
    daemon = DaemonProcess(config, tmp_path / "run.log")
    wait_until(lambda: daemon.saw("api_key_rejected"), message="the loud 401 error")

    paused = wait_until(lambda: status(config)["paused"], message="status to say paused")
    assert paused["reason"] == "key_refused"
    assert paused["since"] <= paused["next_check"]
    text = run_cli("status", "--config", str(config)).stdout
    assert "paused: Gladia refused the key since" in text and "next check at" in text
    explained = run_cli("explain", "--config", str(config), str(sources[0])).stdout
    assert "paused: Gladia refused the key since" in explained, explained

    # A file that arrives meanwhile waits; none is failed for it.
    late = make_wav(inbox / "late.wav", seconds=1.0, tone=777)
    wait_until(lambda: "paused: Gladia refused" in run_cli("explain", "--config", str(config), str(late)).stdout,
               message="the late file to be recorded and wait")
    assert status(config)["failures"] == []

    keys.write_text(KEY + "\n")          # the key is fixed in its file: no SIGHUP, no restart
    wait_until(lambda: complete([*sources, late]), timeout=90, message="the work to resume")
    assert daemon.saw("api_key_accepted")
    assert [e["event"] for e in daemon.events()].count("api_key_rejected") == 1
    assert status(config)["paused"] is None
    assert daemon.stop() == 0
    counts = creates_per_file(emulator)
    assert sorted(counts) == ["late.wav", "talk-0.wav", "talk-1.wav"] and set(counts.values()) == {1}, counts
    assert KEY not in (tmp_path / "run.log").read_text()


def test_a_key_accepted_again_is_found_by_the_periodic_check_and_created_jobs_are_not_paid_twice(
        tmp_path: Path) -> None:
    key = "sk_e2e_account_" + os.urandom(6).hex()
    settings = EmulatorSettings(api_keys=frozenset({key}), processing_seconds=3.0, data_dir=tmp_path / "emulator")
    with Emulator(settings) as emulator:
        inbox = tmp_path / "inbox"
        sources = [make_wav(inbox / f"talk-{i}.wav", seconds=1.0, tone=300 + 50 * i) for i in range(3)]
        config = write_config(tmp_path / "config.toml", emulator.base_url, inbox, tmp_path / "state" / "ledger.db",
                              gladia={"api_key_file": str(key_file(tmp_path, key)), "key_check_seconds": 0.5})
        daemon = DaemonProcess(config, tmp_path / "run.log")
        wait_until(lambda: emulator.counters().get("jobs_created", 0) == 3, message="three jobs created")
        # The account stops accepting the key while the jobs run (credit ran out), over the control endpoint.
        refused = httpx.post(emulator.base_url + "/_emulator/keys", json={"api_keys": ["sk_someone_else"]})
        assert refused.status_code == 200
        wait_until(lambda: daemon.saw("api_key_rejected"), message="the loud 401 error")
        wait_until(lambda: status(config)["paused"], message="status to say paused")
        late = make_wav(inbox / "late.wav", seconds=1.0, tone=777)
        wait_until(lambda: any(e.get("event") == "api_key_check" for e in daemon.events()),
                   message="a periodic check refused")
        emulator.set_api_keys(frozenset({key}))      # credit topped up: the same key works again
        wait_until(lambda: complete([*sources, late]), timeout=90, message="the work to resume")
        assert daemon.saw("api_key_accepted")
        assert [e["event"] for e in daemon.events()].count("api_key_rejected") == 1
        assert daemon.stop() == 0
        counts = creates_per_file(emulator)
        assert len(counts) == 4 and set(counts.values()) == {1}, counts


def test_a_key_refused_while_jobs_wait_on_the_job_list_pauses_at_once(tmp_path: Path) -> None:
    """Jobs in flight learn they finished from the shared job list; a 401 there pauses the work at once (one
    api_key_rejected, status says so) rather than at the next per-job safety poll minutes later."""
    key = "sk_e2e_account_" + os.urandom(6).hex()
    settings = EmulatorSettings(api_keys=frozenset({key}), data_dir=tmp_path / "emulator")
    with Emulator(settings) as emulator:
        emulator.set_faults(hold_jobs=True)            # the jobs stay queued: only the list is asked about them
        inbox = tmp_path / "inbox"
        sources = [make_wav(inbox / f"talk-{i}.wav", seconds=1.0, tone=400 + 50 * i) for i in range(2)]
        config = write_config(tmp_path / "config.toml", emulator.base_url, inbox, tmp_path / "state" / "ledger.db",
                              gladia={"api_key_file": str(key_file(tmp_path, key)), "key_check_seconds": 0.5,
                                      "poll_max_seconds": 300.0})   # a job's own safety GET: every 10 minutes
        daemon = DaemonProcess(config, tmp_path / "run.log")
        wait_until(lambda: emulator.counters().get("jobs_created", 0) == 2, message="two jobs created")
        refused = httpx.post(emulator.base_url + "/_emulator/keys", json={"api_keys": ["sk_someone_else"]})
        assert refused.status_code == 200
        wait_until(lambda: daemon.saw("api_key_rejected"), timeout=60, message="the 401 on the job list noticed")
        assert wait_until(lambda: status(config)["paused"], message="status to say paused")["reason"] == "key_refused"
        emulator.set_api_keys(frozenset({key}))
        emulator.set_faults(hold_jobs=False)
        wait_until(lambda: complete(sources), timeout=90, message="the work to resume")
        assert [e["event"] for e in daemon.events()].count("api_key_rejected") == 1
        assert daemon.stop() == 0
        assert set(creates_per_file(emulator).values()) == {1}
