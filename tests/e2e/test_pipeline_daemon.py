"""The daemon end to end: every file transcribed, never paid twice, crash-proof, resumable (issue #4).

Real `transcribed` subprocesses against the emulator over real HTTP; counters come from the emulator.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import KEY, DaemonProcess, make_wav, run_cli, wait_until, write_config

from transcribed.emulator import Emulator
from transcribed.pipeline.context import CRASH_POINTS

FORMATS = ("txt", "srt", "vtt", "json")


def setup(tmp_path: Path, emulator: Emulator, files: int = 3, **sections: dict) -> tuple[Path, Path, list[Path]]:
    inbox = tmp_path / "inbox"
    sources = [make_wav(inbox / f"talk-{i}.wav", seconds=1.0 + i % 3, tone=200 + 37 * i) for i in range(files)]
    config = write_config(tmp_path / "config.toml", emulator.base_url, inbox, tmp_path / "state" / "ledger.db",
                          **sections)
    return config, inbox, sources


def assert_complete(sources: list[Path]) -> None:
    """Every source has every output, whole (no torn file, no temp file left visible)."""
    for source in sources:
        for fmt in FORMATS:
            output = source.with_suffix("." + fmt)
            assert output.is_file(), output
        body = json.loads(source.with_suffix(".json").read_text())
        assert body["status"] == "done"
        assert source.with_suffix(".srt").read_text().startswith("1\n")
    leftovers = [p for p in sources[0].parent.rglob(".*") if p.is_file()]
    assert leftovers == []


def creates_per_file(emulator: Emulator) -> dict[str, int]:
    """How many jobs Gladia was asked to create for each uploaded file name."""
    counts: dict[str, int] = {}
    for job in emulator.jobs():
        name = (job.get("file") or {}).get("filename", "?")  # type: ignore[union-attr]
        counts[name] = counts.get(name, 0) + 1
    return counts


def once(config: Path, tmp_path: Path, **env: str):
    return run_cli("once", "--config", str(config), timeout=180, **env)


def test_once_transcribes_everything_and_exits_0(tmp_path: Path, emulator: Emulator) -> None:
    config, _, sources = setup(tmp_path, emulator, files=4)
    result = once(config, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    assert_complete(sources)
    assert emulator.counters()["jobs_created"] == 4
    # A second run over the same inbox costs nothing: no upload, no job, no hashing needed.
    uploads = emulator.counters().get("POST /v2/upload", 0)
    again = once(config, tmp_path)
    assert again.returncode == 0
    assert emulator.counters().get("POST /v2/upload", 0) == uploads
    assert emulator.counters()["jobs_created"] == 4


def test_rename_copy_and_replace(tmp_path: Path, emulator: Emulator) -> None:
    config, inbox, sources = setup(tmp_path, emulator, files=2)
    assert once(config, tmp_path).returncode == 0
    uploads = emulator.counters()["POST /v2/upload"]
    renamed = inbox / "renamed.wav"
    sources[0].rename(renamed)
    (inbox / "sub").mkdir()
    copy = inbox / "sub" / "copy.wav"
    shutil.copy2(sources[1], copy)
    assert once(config, tmp_path).returncode == 0
    assert emulator.counters()["POST /v2/upload"] == uploads        # no new upload...
    assert emulator.counters()["jobs_created"] == 2                   # ...and no new paid job
    assert_complete([renamed, copy])
    for shown, other in ((copy, sources[1]), (sources[1], copy)):    # explain names the other place, not itself
        explained = run_cli("explain", "--config", str(config), str(shown)).stdout
        seen = next(line for line in explained.splitlines() if "also seen at" in line)
        assert str(other) in seen and str(shown) not in seen, explained
    # Same name, new bytes: transcribed again.
    make_wav(sources[1], seconds=2.5, tone=999)
    time.sleep(0.01)
    assert once(config, tmp_path).returncode == 0
    assert emulator.counters()["jobs_created"] == 3
    assert_complete([sources[1]])


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_crash_at_each_step_then_restart(tmp_path: Path, emulator: Emulator, point: str) -> None:
    config, _, sources = setup(tmp_path, emulator, files=2, workers={"concurrency": 1})
    crashed = once(config, tmp_path, TRANSCRIBED_CRASH_AT=point)
    assert crashed.returncode == 97, crashed.stdout[-2000:]
    result = once(config, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    assert_complete(sources)
    assert set(creates_per_file(emulator).values()) == {1}, creates_per_file(emulator)


def test_kill_9_at_random_moments(tmp_path: Path, emulator: Emulator) -> None:
    config, _, sources = setup(tmp_path, emulator, files=50, workers={"concurrency": 4})
    rng = random.Random(7)
    for round_number in range(6):
        daemon = DaemonProcess(config, tmp_path / f"run-{round_number}.log")
        time.sleep(rng.uniform(0.3, 2.0))    # the kill moment is the point of the test, not a wait
        daemon.proc.send_signal(signal.SIGKILL)
        daemon.proc.wait(30)
    result = once(config, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    assert_complete(sources)
    counts = creates_per_file(emulator)
    assert len(counts) == 50 and set(counts.values()) == {1}, counts


def test_api_faults_everything_done_no_duplicate_jobs(tmp_path: Path, emulator: Emulator) -> None:
    emulator.set_faults(server_error_rate={"*": 0.15}, drop_rate={"POST /v2/pre-recorded": 0.3, "*": 0.05},
                        rate_limit_next={"POST /v2/upload": 3}, retry_after_seconds=1,
                        delay_seconds={"GET /v2/pre-recorded/{id}": 0.05}, truncate_rate={"*": 0.05})
    config, _, sources = setup(tmp_path, emulator, files=8, workers={"concurrency": 3},
                               gladia={"max_attempts": 20, "outage_probe_seconds": 1.0})
    result = once(config, tmp_path)
    if result.returncode != 0:      # a file may exhaust its per-run retries; the next run finishes it
        emulator.set_faults(server_error_rate={}, drop_rate={}, truncate_rate={})
        result = once(config, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    assert_complete(sources)
    counts = creates_per_file(emulator)
    assert len(counts) == 8 and set(counts.values()) == {1}, counts


def test_retry_after_is_honoured(tmp_path: Path, emulator: Emulator) -> None:
    emulator.set_faults(rate_limit_next={"POST /v2/upload": 1}, retry_after_seconds=2)
    config, _, sources = setup(tmp_path, emulator, files=1)
    daemon = DaemonProcess(config, tmp_path / "run.log", command="once")
    assert daemon.wait(120) == 0
    retries = [e for e in daemon.events() if e.get("event") == "api_retry" and e.get("status") == 429]
    assert retries and retries[0]["retry_in"] >= 2.0
    assert_complete(sources)


def test_job_errors_5xx_become_a_new_job_4xx_fail_for_good(tmp_path: Path, emulator: Emulator) -> None:
    emulator.set_faults(job_error_rate=1.0, job_error_code=500)
    config, _, sources = setup(tmp_path, emulator, files=1, workers={"max_job_attempts": 2})
    assert once(config, tmp_path).returncode == 1
    assert emulator.counters()["jobs_created"] == 2          # bounded: max_job_attempts
    emulator.set_faults(job_error_rate=1.0, job_error_code=422)
    make_wav(sources[0].with_name("other.wav"), tone=700)
    assert once(config, tmp_path).returncode == 1
    assert emulator.counters()["jobs_created"] == 3          # a 4xx job error is not retried
    status = json.loads(run_cli("status", "--config", str(config), "--json").stdout)
    reasons = " ".join(f["reason"] for f in status["failures"])
    assert "error_code 422" in reasons and "error_code 500" in reasons
    explained = run_cli("explain", "--config", str(config), str(sources[0])).stdout
    assert "failed" in explained and "transcribed retry" in explained
    emulator.set_faults(job_error_rate=0.0)
    assert run_cli("retry", "--config", str(config), "--failed").returncode == 0
    assert once(config, tmp_path).returncode == 0
    assert_complete(sources)


def test_sigterm_while_polling_exits_0_and_resumes_without_a_new_job(tmp_path: Path, emulator: Emulator) -> None:
    emulator.set_faults(hold_jobs=True)
    config, _, sources = setup(tmp_path, emulator, files=2)
    daemon = DaemonProcess(config, tmp_path / "run.log")
    wait_until(lambda: emulator.counters().get("jobs_created", 0) == 2, message="jobs created")
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(15) == 0
    assert time.monotonic() - started < 10.0 + 2.0
    emulator.set_faults(hold_jobs=False)
    assert once(config, tmp_path).returncode == 0
    assert emulator.counters()["jobs_created"] == 2
    assert_complete(sources)


def test_sigterm_during_upload_then_a_second_signal_stops_at_once(tmp_path: Path, emulator: Emulator) -> None:
    emulator.set_faults(delay_seconds={"POST /v2/upload": 30.0})
    config, _, sources = setup(tmp_path, emulator, files=1)
    daemon = DaemonProcess(config, tmp_path / "run.log")
    wait_until(lambda: emulator.counters().get("POST /v2/upload", 0) >= 1, message="an upload in flight")
    daemon.signal(signal.SIGTERM)
    wait_until(lambda: daemon.saw("stop_requested"), message="stop requested")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(10) == 75
    emulator.set_faults(delay_seconds={})
    assert once(config, tmp_path).returncode == 0
    assert_complete(sources)
    assert emulator.counters()["jobs_created"] == 1


def test_a_bad_key_pauses_everything_until_a_reload_fixes_it(tmp_path: Path, emulator: Emulator) -> None:
    config, _, sources = setup(tmp_path, emulator, files=2)
    daemon = DaemonProcess(config, tmp_path / "run.log", GLADIA_API_KEY="sk_wrong_key")
    wait_until(lambda: daemon.saw("api_key_rejected"), message="the loud 401 error")
    rejected = [e for e in daemon.events() if e.get("event") == "api_key_rejected"]
    assert len(rejected) == 1
    assert status(config)["paused"]["reason"] == "key_refused"
    key_file = tmp_path / "key"
    key_file.write_text(KEY)
    text = config.read_text().replace("[gladia]", f'[gladia]\napi_key_file = "{key_file}"')
    config.write_text(text)
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: all(s.with_suffix(".txt").exists() for s in sources), message="work resumed")
    assert status(config)["paused"] is None
    assert daemon.stop() == 0
    assert_complete(sources)


def test_a_restart_with_a_fixed_key_is_no_longer_reported_paused(tmp_path: Path, emulator: Emulator) -> None:
    config, _, sources = setup(tmp_path, emulator, files=1)
    daemon = DaemonProcess(config, tmp_path / "run.log", GLADIA_API_KEY="sk_wrong_key")
    wait_until(lambda: status(config)["paused"], message="the pause in `status`")
    assert daemon.stop() == 0
    daemon = DaemonProcess(config, tmp_path / "run-again.log")
    wait_until(lambda: sources[0].with_suffix(".txt").exists(), message="the file transcribed")
    report = status(config)
    assert report["running"] and report["paused"] is None
    assert daemon.stop() == 0


def status(config: Path) -> dict:
    """What `transcribed status --json` reports."""
    done = run_cli("status", "--json", "--config", str(config))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_outage_probes_about_once_per_interval_then_drains(tmp_path: Path, emulator: Emulator) -> None:
    emulator.set_faults(down=True, down_status=None)
    config, _, sources = setup(tmp_path, emulator, files=5, gladia={"outage_probe_seconds": 2.0, "max_attempts": 3})
    daemon = DaemonProcess(config, tmp_path / "run.log")
    wait_until(lambda: daemon.saw("api_down"), message="the circuit to open")
    before = sum(v for k, v in emulator.counters().items() if k.count(" ") == 1 and not k.startswith("GET /_"))
    time.sleep(8.0)    # measuring the request rate while down needs a stretch of wall time
    during = sum(v for k, v in emulator.counters().items() if k.count(" ") == 1 and not k.startswith("GET /_"))
    assert during - before <= 8 / 2.0 + 2
    emulator.set_faults(down=False)
    wait_until(lambda: all(s.with_suffix(".txt").exists() for s in sources), timeout=90, message="drained")
    assert daemon.stop() == 0
    assert_complete(sources)


def test_damaged_ledger_is_kept_aside_and_nothing_is_re_billed(tmp_path: Path, emulator: Emulator) -> None:
    config, _, _ = setup(tmp_path, emulator, files=2)
    assert once(config, tmp_path).returncode == 0
    ledger = tmp_path / "state" / "ledger.db"
    data = ledger.read_bytes()
    ledger.write_bytes(data[: len(data) // 2] + b"garbage" * 100)
    refused = once(config, tmp_path)
    assert refused.returncode == 78 and "--rebuild-ledger" in refused.stderr
    assert list(ledger.parent.glob("ledger.db.damaged-*"))
    assert once(config, tmp_path).returncode == 78        # still refused: never silently empty
    rebuilt = run_cli("once", "--config", str(config), "--rebuild-ledger", timeout=180)
    assert rebuilt.returncode == 0, rebuilt.stdout[-2000:]
    assert emulator.counters()["jobs_created"] == 2        # outputs on disk were adopted: nothing re-billed
    for output in tmp_path.glob("inbox/*.txt"):
        output.unlink()
    assert run_cli("render", "--config", str(config)).returncode == 0   # stored results survived the rebuild
    assert len(list(tmp_path.glob("inbox/*.txt"))) == 2


def test_secret_canary_appears_nowhere(tmp_path: Path, emulator: Emulator) -> None:
    config, _, sources = setup(tmp_path, emulator, files=2)
    daemon = DaemonProcess(config, tmp_path / "run.log")
    wait_until(lambda: all(s.with_suffix(".json").exists() for s in sources), message="outputs")
    cmdline = Path(f"/proc/{daemon.proc.pid}/cmdline").read_bytes()
    assert daemon.stop() == 0
    assert KEY.encode() not in cmdline
    for path in tmp_path.rglob("*"):
        if path.is_file() and "emulator" not in path.parts:
            assert KEY.encode() not in path.read_bytes(), path
    with sqlite3.connect(tmp_path / "state" / "ledger.db") as conn:
        assert KEY not in "".join(conn.iterdump())


def test_hostile_names_are_transcribed_and_logged_one_line_each(tmp_path: Path, emulator: Emulator) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    names = [b"-rf --help.wav", b"new\nline.wav", b"bad-\xff\xfe-utf8.wav", b"x" * 251 + b".wav",
             "caf\u00e9 \u202etxt.wav".encode()]
    sources = []
    for number, raw in enumerate(names):
        path = Path(os.fsdecode(os.fsencode(inbox) + b"/" + raw))
        sources.append(make_wav(path, tone=300 + 50 * number))
    config = write_config(tmp_path / "config.toml", emulator.base_url, inbox, tmp_path / "ledger.db")
    daemon = DaemonProcess(config, tmp_path / "run.log", command="once")
    assert daemon.wait(120) == 0
    for source in sources:
        assert source.with_suffix(".txt").is_file(), source
    lines = (tmp_path / "run.log").read_bytes().splitlines()
    assert all(line.startswith(b"{") and line.endswith(b"}") for line in lines), "one JSON object per line"
    written = [json.loads(line) for line in lines if b'"transcript_written"' in line]
    assert len(written) == len(sources)


def test_an_empty_file_fails_with_a_reason_and_nothing_is_uploaded(tmp_path: Path, emulator: Emulator) -> None:
    config, inbox, sources = setup(tmp_path, emulator, files=1)
    empty = inbox / "empty.mp3"
    empty.write_bytes(b"")
    assert once(config, tmp_path).returncode == 1
    assert_complete(sources)
    assert emulator.counters()["files_uploaded"] == 1
    explained = run_cli("explain", "--config", str(config), str(empty)).stdout
    assert "the file is empty" in explained


def test_hooks_run_and_sources_move_when_done_and_render_follows_new_settings(tmp_path: Path,
                                                                                emulator: Emulator) -> None:
    done = tmp_path / "done"
    marker = tmp_path / "hook-calls.txt"
    script = tmp_path / "hook.py"
    script.write_text("import sys\nopen(sys.argv[1], 'a').write(' | '.join(sys.argv[2:]) + '\\n')\n")
    config, inbox, sources = setup(
        tmp_path, emulator, files=1,
        output={"after": "move", "done_directory": str(done), "name": "{stem}.{lang}.{format}"},
        hooks={"on_done": [sys.executable, str(script), str(marker), "{state}", "{source}", "{srt}"]})
    assert once(config, tmp_path).returncode == 0
    moved = done / sources[0].name
    assert moved.is_file() and not sources[0].exists()
    srt = inbox / (sources[0].stem + ".en.srt")
    assert srt.is_file()
    calls = marker.read_text().splitlines()
    assert calls == [f"done | {sources[0]} | {srt}"]
    assert KEY not in marker.read_text()


def test_a_job_the_server_forgot_is_created_again(tmp_path: Path, emulator: Emulator) -> None:
    from transcribed.emulator import Emulator as Server
    from transcribed.emulator import EmulatorSettings

    emulator.set_faults(hold_jobs=True)
    config, _, sources = setup(tmp_path, emulator, files=1)
    daemon = DaemonProcess(config, tmp_path / "run.log")
    wait_until(lambda: emulator.counters().get("jobs_created", 0) == 1, message="a job in flight")
    assert daemon.stop() == 0
    port = int(emulator.base_url.rsplit(":", 1)[1])
    emulator.stop()                       # the server loses its jobs (the uploaded files stay on its disk)
    settings = EmulatorSettings(port=port, api_keys=frozenset({KEY}), processing_seconds=0.1,
                                data_dir=tmp_path / "emulator")
    with Server(settings) as restarted:
        result = once(config, tmp_path)
        assert result.returncode == 0, result.stdout[-3000:]
        assert restarted.counters()["jobs_created"] == 1
    assert_complete(sources)


def test_a_restart_skips_finished_files_and_finds_one_rewritten_in_place_meanwhile(tmp_path: Path,
                                                                                    emulator: Emulator) -> None:
    """`run` starts from the settled set its last stop saved: finished files cost nothing, a file added
    while it was stopped is picked up, and one rewritten in place (same name and inode) is found by the full
    rescan that follows the start scan."""
    config, inbox, sources = setup(tmp_path, emulator, files=3)
    daemon = DaemonProcess(config, tmp_path / "first.log")
    wait_until(lambda: all(s.with_suffix(".json").exists() for s in sources), message="first outputs")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(15) == 0
    inode = sources[0].stat().st_ino
    with sources[0].open("r+b") as rewrite:           # in place: the same inode, new bytes
        rewrite.write(make_wav(tmp_path / "other.wav", seconds=2.0, tone=777).read_bytes())
        rewrite.truncate()
    assert sources[0].stat().st_ino == inode
    added = make_wav(inbox / "added.wav", seconds=1.0, tone=555)
    old = time.time() - 3600
    for path in (sources[0], added):
        os.utime(path, (old, old))                     # complete at once: no settle wait
    daemon = DaemonProcess(config, tmp_path / "second.log")
    wait_until(lambda: emulator.counters().get("jobs_created", 0) == 5, timeout=120,
               message="a job for the added file and one for the rewritten file")
    wait_until(lambda: added.with_suffix(".json").exists(), message="outputs of the added file")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(15) == 0
    assert emulator.counters()["jobs_created"] == 5
    assert not any(event.get("event") == "file_discovered" and event.get("file") == str(sources[2])
                   for event in daemon.events())


def test_a_page_damaged_after_a_clean_stop_is_found_at_the_next_start(tmp_path: Path, emulator: Emulator) -> None:
    """The start-up reads little of the ledger (the settled set saved at the clean stop); PRAGMA quick_check,
    run beside the scan, still finds a damaged page anywhere before anything is written."""
    config, _, _ = setup(tmp_path, emulator, files=3)
    assert once(config, tmp_path).returncode == 0
    assert once(config, tmp_path).returncode == 0                     # a clean stop with nothing to do
    ledger = tmp_path / "state" / "ledger.db"
    with sqlite3.connect(ledger) as conn:    # the page of the paths table: nothing in `once` reads it here
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        number = conn.execute("SELECT rootpage FROM sqlite_schema WHERE name = 'paths'").fetchone()[0] - 1
    conn.close()
    data = ledger.read_bytes()
    noise = random.Random(5).randbytes(page_size)
    ledger.write_bytes(data[:number * page_size] + noise + data[(number + 1) * page_size:])
    refused = once(config, tmp_path)
    assert refused.returncode == 78, refused.stdout[-2000:] + refused.stderr[-2000:]
    assert "--rebuild-ledger" in refused.stderr
    assert list(ledger.parent.glob("ledger.db.damaged-*"))
    assert emulator.counters()["jobs_created"] == 3


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 64 KiB tmpfs (root only), unmounted afterwards."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(mount_point)],
                          capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode(errors='replace').strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_output_disk_leaves_no_partial_transcript_and_is_retried_when_space_returns(
        tmp_path: Path, emulator: Emulator, tiny_disk: Path) -> None:
    """RELIABILITY R11 end to end: outputs on a full disk are not half-written nor marked done, and the
    stored result is published once space returns, with no second paid job."""
    filler = tiny_disk / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    with contextlib.suppress(OSError):        # until the disk is full
        while True:
            os.write(descriptor, b"\0" * 4096)
    os.close(descriptor)
    config, _, sources = setup(tmp_path, emulator, files=2, output={"directory": str(tiny_disk)})
    full = once(config, tmp_path)
    assert full.returncode == 1, full.stdout[-3000:]
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler"]          # nothing partial, no temp file
    assert any(e.get("event") == "file_retry_scheduled" and "No space left" in e.get("reason", "")
               for e in map(json.loads, full.stdout.splitlines()))
    status = json.loads(run_cli("status", "--json", "--config", str(config)).stdout)
    assert status["counts"]["done"] == 0
    filler.unlink()                                                            # space returns
    assert run_cli("retry", "--failed", "--config", str(config)).returncode == 0
    again = once(config, tmp_path)
    assert again.returncode == 0, again.stdout[-3000:]
    for source in sources:
        assert (tiny_disk / (source.stem + ".txt")).read_text().strip()
    assert emulator.counters()["jobs_created"] == 2                            # never paid twice
