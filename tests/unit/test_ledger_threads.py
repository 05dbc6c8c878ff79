"""Several worker threads driving transitions through one ledger at once: no lost update, no error, every
row ends valid, and a second connection (another process's view) sees the same."""

from __future__ import annotations

import threading
from pathlib import Path

from transcribed.ledger import Ledger

WORKERS = 8
FILES_PER_WORKER = 25



def key_for(worker: int, index: int) -> str:
    return f"sha256:{worker:032x}{index:032x}"


def drive(ledger: Ledger, worker: int, errors: list[Exception], start: threading.Barrier) -> None:
    try:
        start.wait(timeout=30)
        for index in range(FILES_PER_WORKER):
            key = key_for(worker, index)
            ledger.record_seen(key, f"/inbox/w{worker}/{index}.mp3", "/inbox", 1, worker * 1000 + index, 10, 1)
            ledger.mark_uploading(key)
            ledger.mark_uploaded(key, f"https://u/{key}")
            ledger.mark_intent(key, f"attempt-{key}")
            ledger.mark_submitted(key, f"job-{key}", f"https://r/{key}")
            if index % 5 == 0:
                ledger.mark_failed(key, "503", retry_at=0.0)
                ledger.reset_for_retry(key)
            ledger.store_result(key, {"key": key})
            ledger.mark_done(key, {f"/out/w{worker}/{index}.txt": "h"})
            ledger.set_meta(f"worker-{worker}", str(index))
            assert ledger.pending(now=0.0) is not None
            assert ledger.counts()["done"] >= index
    except Exception as exc:  # a test thread reports every failure to the main thread
        errors.append(exc)


def test_many_threads_one_ledger(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    errors: list[Exception] = []
    start = threading.Barrier(WORKERS)
    with Ledger.open(path) as ledger:
        threads = [threading.Thread(target=drive, args=(ledger, worker, errors, start), name=f"worker-{worker}")
                   for worker in range(WORKERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in threads)
        assert errors == []
        total = WORKERS * FILES_PER_WORKER
        assert ledger.counts()["done"] == total
        assert ledger.verify() == []
        every = [ledger.get(key_for(worker, index)) for worker in range(WORKERS)
                 for index in range(FILES_PER_WORKER)]
        assert all(entry is not None and entry.state == "done" and entry.job_attempts == 1 for entry in every)
    with Ledger.open(path, read_only=True) as reader:
        assert reader.counts()["done"] == total
        assert reader.get_meta("worker-3") == str(FILES_PER_WORKER - 1)
