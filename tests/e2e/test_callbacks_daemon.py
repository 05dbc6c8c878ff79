"""Results by callback: the daemon's receiver wakes the worker, one confirming GET per job (issue #7)."""

from __future__ import annotations

import signal
from pathlib import Path

from support import DaemonProcess, free_port, make_wav, wait_until, write_config

from transcribed.emulator import Emulator


def test_callbacks_replace_polling_and_survive_a_restart(tmp_path: Path, emulator: Emulator) -> None:
    port = free_port()
    inbox = tmp_path / "inbox"
    sources = [make_wav(inbox / f"talk-{i}.wav", tone=300 + 40 * i) for i in range(3)]
    config = write_config(tmp_path / "config.toml", emulator.base_url, inbox, tmp_path / "ledger.db",
                          callback={"enabled": True, "listen": f"127.0.0.1:{port}",
                                    "public_url": f"http://127.0.0.1:{port}/hooks", "method": "PUT",
                                    "safety_poll_seconds": 300.0})
    daemon = DaemonProcess(config, tmp_path / "run.log")
    wait_until(lambda: all(s.with_suffix(".txt").exists() for s in sources), message="outputs via callbacks")
    counters = emulator.counters()
    assert counters.get("callbacks_delivered", 0) == 3
    assert counters.get("GET /v2/pre-recorded/{id}", 0) <= 3          # one confirming GET per job
    job = emulator.jobs()[0]
    assert job["request_params"]["callback_config"]["method"] == "PUT"  # type: ignore[index]

    # A job created before a restart: its callback (same derived token) is still accepted afterwards.
    emulator.set_faults(hold_jobs=True)
    late = make_wav(inbox / "late.wav", tone=900)
    wait_until(lambda: emulator.counters().get("jobs_created", 0) == 4, message="the fourth job")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(15) == 0
    daemon = DaemonProcess(config, tmp_path / "run2.log")
    wait_until(lambda: daemon.saw("callback_listening"), message="receiver up again")
    gets = emulator.counters().get("GET /v2/pre-recorded/{id}", 0)
    emulator.set_faults(hold_jobs=False)
    wait_until(lambda: late.with_suffix(".txt").exists(), message="the resumed job's outputs")
    assert emulator.counters().get("GET /v2/pre-recorded/{id}", 0) - gets <= 1
    assert emulator.counters()["jobs_created"] == 4
    assert daemon.stop() == 0
