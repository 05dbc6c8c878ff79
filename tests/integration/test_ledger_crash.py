"""kill -9 while the ledger is being written: a subprocess drives transitions in a loop (two threads, results
large enough to make SQLite fold its log into the file now and then) and is killed at random moments.
After each kill the ledger opens cleanly (no damage, no rebuild), every row is in a valid state, and every
transition the worker had reported as returned is there: a transition is durable once its call returns.
Before each kill a read-only ledger (what `transcribed status` opens) reads while the worker writes.

Run as a script, this file is the worker: `python test_ledger_crash.py LEDGER SEED`.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

from transcribed.ledger import Ledger

ITERATIONS = 6
# A reported step is durable: the row must be at least that far along (the worker may be further ahead than
# what the parent read from its pipe, never behind).
REQUIRED = {"discovered": 0, "uploading": 1, "uploaded": 2, "intent": 3, "submitted": 4, "failed": 4,
            "retried": 4, "result": 7, "done": 8}


def progress(state: str, attempt_id: str | None, has_result: bool) -> int:
    """How far along the worker's sequence a row in this state is."""
    if state == "done":
        return 8
    if state == "submitted":
        return 7 if has_result else 4
    if state == "failed":
        return 4
    if state == "uploaded":
        return 3 if attempt_id else 2
    return 1 if state == "uploading" else 0


# --- the worker ------------------------------------------------------------------------------------------


def work(path: Path, seed: int) -> None:
    ledger = Ledger.open(path)
    say_lock = threading.Lock()

    def say(key: str, step: str) -> None:
        with say_lock:
            sys.stdout.write(f"{key} {step}\n")
            sys.stdout.flush()

    def resume() -> None:
        """Carry every unfinished row forward to done (a stand-in for the pipeline's resume)."""
        for entry in ledger.pending(now=float("inf")):
            key = entry.key
            if entry.state in ("discovered", "uploading"):
                if entry.state == "discovered":
                    ledger.mark_uploading(key)
                ledger.mark_uploaded(key, "https://u/resumed")
                entry = ledger.get(key) or entry
            if entry.state == "uploaded":
                if entry.attempt_id is None:
                    ledger.mark_intent(key, f"attempt-{key[-12:]}")
                # An intent without a job: here the lookup by attempt id always finds the job.
                ledger.mark_submitted(key, f"job-{key[-12:]}", f"https://r/{key[-12:]}")
            if entry.state == "failed":
                ledger.reset_for_retry(key)
            ledger.mark_done(key, {f"/out/{key[-12:]}.txt": "h"})

    def loop(lane: int) -> None:
        chance = random.Random(seed * 10 + lane)
        for index in range(10**6):
            key = f"sha256:{seed:016x}{lane:016x}{index:032x}"
            ledger.record_seen(key, f"/inbox/{seed}/{lane}/{index}.mp3", "/inbox", 1, index, 10, index)
            say(key, "discovered")
            ledger.mark_uploading(key)
            say(key, "uploading")
            ledger.mark_uploaded(key, f"https://u/{key}", duration=chance.random() * 100)
            say(key, "uploaded")
            ledger.mark_intent(key, f"attempt-{key[-12:]}")
            say(key, "intent")
            ledger.mark_submitted(key, f"job-{key[-12:]}", f"https://r/{key[-12:]}")
            say(key, "submitted")
            if chance.random() < 0.3:
                ledger.mark_failed(key, "GET -> 503", retry_at=1.0)
                say(key, "failed")
                ledger.reset_for_retry(key)
                say(key, "retried")
            ledger.store_result(key, {"text": chance.randbytes(24_000).hex()})
            say(key, "result")
            ledger.mark_done(key, {f"/out/{key[-12:]}.txt": "h", f"/out/{key[-12:]}.srt": "h"})
            say(key, "done")

    resume()
    lanes = [threading.Thread(target=loop, args=(lane,), daemon=True) for lane in range(2)]
    for lane in lanes:
        lane.start()
    for lane in lanes:
        lane.join()


# --- the test --------------------------------------------------------------------------------------------



def run_and_kill(path: Path, seed: int, lines_before_kill: int) -> dict[str, str]:
    """Start the worker, read `lines_before_kill` reports, SIGKILL it; return the last step per key."""
    process = subprocess.Popen([sys.executable, __file__, str(path), str(seed)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    reported: dict[str, str] = {}
    try:
        assert process.stdout is not None
        while len(reported) < 10**9 and lines_before_kill > 0:
            line = process.stdout.readline()
            if not line:
                break
            key, step = line.split()
            reported[key] = step
            lines_before_kill -= 1
        if reported:  # `transcribed status` reads while the daemon writes: a consistent view, no error
            with Ledger.open(path, read_only=True) as reader:
                counts = reader.counts()
                assert sum(counts.values()) >= 1
                assert all(entry.state != "done" for entry in reader.in_flight())
                reader.failures()
                reader.pending()
    finally:
        os.kill(process.pid, signal.SIGKILL)
        _out, errors = process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL, errors
    return reported


def test_sigkill_at_random_moments_leaves_a_sound_ledger(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    chance = random.Random(int.from_bytes(os.urandom(4), "big"))
    seed_note = chance.random()  # printed on failure, to tell runs apart
    for iteration in range(ITERATIONS):
        lines = 0 if iteration == 0 else chance.randrange(1, 400)  # the first kill may land inside open()
        reported = run_and_kill(path, iteration + 1, lines)
        if not path.exists():
            continue
        with Ledger.open(path) as ledger:
            assert ledger.recovery is None
            assert ledger.verify() == [], (iteration, seed_note)
            for key, step in reported.items():
                entry = ledger.get(key)
                assert entry is not None, (key, step)
                reached = progress(entry.state, entry.attempt_id, ledger.load_result(key) is not None)
                assert reached >= REQUIRED[step], (key, step, entry)
                assert not (step == "retried" and entry.state == "failed"), (key, entry)
                assert entry.job_attempts <= 1, entry  # never a second create request for one content
            for entry in ledger.pending(now=float("inf")):
                assert entry.state in ("discovered", "uploading", "uploaded", "submitted", "failed")
    with Ledger.open(path) as ledger:
        assert ledger.counts()["done"] > 0


if __name__ == "__main__":
    work(Path(sys.argv[1]), int(sys.argv[2]))
