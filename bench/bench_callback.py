"""Results by callback against results by polling (issue 7), both against the emulator in the same run.

    .venv/bin/python bench/bench_callback.py [--jobs 20] [--shortest 2] [--longest 30]

`jobs` jobs lasting `shortest`..`longest` seconds (uploaded WAVs of 1 s and more, durations spread evenly,
processing_seconds = shortest - 1, processing_factor = 1), all in flight at once, in two modes at the same
time, each against its own emulator in a process of its own (so each mode's GETs are counted apart, by the
emulator itself):

(a) callback: created with `callback: true` and the hub's URL (a real CallbackHub + CallbackServer on
    127.0.0.1, as the daemon runs them); the worker waits on the hub (safety poll 60 s) and confirms with one
    GET, as the pipeline does.
(b) polling: GladiaClient.wait, 1 s growing x1.5 up to 30 s (the daemon's defaults).

Figures per mode: GETs per job (the emulator's "GET /v2/pre-recorded/{id}" counter / jobs) and the delay from
a job finishing (the emulator's completed_at) to its worker knowing it is done: for (a) to the notice
(hub.notified_at), to wait() returning, and to the confirming GET returning; for (b) to GladiaClient.wait
returning. Targets, callback mode: <= 1.2 GET per job and a median delay to wait() returning <= 0.25 s.
"""

from __future__ import annotations

import argparse
import logging
import socket
import statistics
import sys
import tempfile
import threading
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog

from emulator_process import EmulatorProcess
from transcribed.config import CallbackConfig
from transcribed.gladia.client import CreatedJob, GladiaClient
from transcribed.receiver import CallbackHub, CallbackServer

KEY = "bench-key"
SAMPLE_RATE = 8000
SAFETY_POLL_SECONDS = 60.0
GET_ROUTE = "GET /v2/pre-recorded/{id}"


@dataclass
class Outcome:
    job_id: str
    noticed: float | None = None     # wall-clock times
    returned: float = 0.0
    confirmed: float = 0.0
    safety_polls: int = 0


def write_wav(path: Path, seconds: float) -> Path:
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(SAMPLE_RATE)
        writer.writeframes(b"\0\0" * int(SAMPLE_RATE * seconds))
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def completed_at(emulator: EmulatorProcess) -> dict[str, float]:
    return {job["id"]: datetime.fromisoformat(job["completed_at"].replace("Z", "+00:00")).timestamp()
            for job in emulator.jobs() if job["completed_at"]}


def by_callback(client: GladiaClient, hub: CallbackHub, audio_url: str, start: threading.Barrier) -> Outcome:
    """What a worker does with callbacks: create with the hub's URL, wait on the hub, confirm with one GET."""
    # The monotonic clock of notified_at, mapped onto the wall clock of completed_at.
    offset = time.time() - time.monotonic()
    token = hub.new_token()
    start.wait()
    job = client.create({"audio_url": audio_url, "callback": True,
                         "callback_config": {"url": hub.callback_url(token), "method": "POST"}})
    hub.expect(job.id, token)
    outcome = Outcome(job.id)
    try:
        while True:
            if not hub.wait(job.id, SAFETY_POLL_SECONDS):
                outcome.safety_polls += 1
            outcome.returned = time.time()
            view = client.get(job.id, job.result_url)
            if view.status in ("done", "error"):
                outcome.confirmed = time.time()
                break
        noticed = hub.notified_at(job.id)
        outcome.noticed = None if noticed is None else noticed + offset
    finally:
        hub.forget(job.id)
    return outcome


def by_polling(client: GladiaClient, audio_url: str, start: threading.Barrier) -> Outcome:
    """What a worker does without callbacks: GladiaClient.wait, 1 s x1.5 up to 30 s."""
    start.wait()
    job: CreatedJob = client.create({"audio_url": audio_url})
    client.wait(job, initial=1.0, cap=30.0, deadline=900.0)
    now = time.time()
    return Outcome(job.id, returned=now, confirmed=now)


def describe(delays: list[float]) -> str:
    ordered = sorted(delays)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"median {statistics.median(ordered):6.3f} s   p90 {p90:6.3f} s   max {ordered[-1]:6.3f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--shortest", type=float, default=2.0, help="seconds the shortest job lasts")
    parser.add_argument("--longest", type=float, default=30.0, help="seconds the longest job lasts")
    options = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    count = options.jobs
    spread = options.longest - options.shortest
    if options.shortest < 1.0 or spread < 0:
        parser.error("expected 1 <= shortest <= longest")
    # The emulator refuses empty audio: every WAV lasts at least 1 s, and processing_seconds makes up the rest.
    durations = [1.0 + spread * index / max(1, count - 1) for index in range(count)]
    settings = {"processing_seconds": options.shortest - 1.0, "processing_factor": 1.0,
                "max_concurrent_jobs": 2 * count + 10, "api_keys": None}
    port = free_port()
    config = CallbackConfig(enabled=True, listen=f"127.0.0.1:{port}", public_url=f"http://127.0.0.1:{port}")
    hub = CallbackHub(config)
    server = CallbackServer(hub, config)
    with tempfile.TemporaryDirectory(prefix="bench-callback-") as folder, \
            EmulatorProcess(**settings) as callback_emulator, EmulatorProcess(**settings) as polling_emulator, \
            GladiaClient(callback_emulator.base_url, KEY) as callback_client, \
            GladiaClient(polling_emulator.base_url, KEY) as polling_client:
        server.start()
        try:
            files = [write_wav(Path(folder) / f"job{index:03d}.wav", seconds)
                     for index, seconds in enumerate(durations)]
            callback_urls = [callback_client.upload(path).audio_url for path in files]
            polling_urls = [polling_client.upload(path).audio_url for path in files]
            for emulator in (callback_emulator, polling_emulator):
                emulator.reset()
            print(f"{count} jobs lasting {options.shortest:g}-{options.longest:g} s, in both modes at once ...",
                  flush=True)
            start = threading.Barrier(2 * count)
            with ThreadPoolExecutor(max_workers=2 * count) as pool:
                callback_futures = [pool.submit(by_callback, callback_client, hub, url, start) for url in callback_urls]
                polling_futures = [pool.submit(by_polling, polling_client, url, start) for url in polling_urls]
                callback_outcomes = [future.result() for future in callback_futures]
                polling_outcomes = [future.result() for future in polling_futures]
        finally:
            server.stop()
            hub.close()
        finished = {"callback": completed_at(callback_emulator), "polling": completed_at(polling_emulator)}
        gets = {"callback": callback_emulator.counters().get(GET_ROUTE, 0) / count,
                "polling": polling_emulator.counters().get(GET_ROUTE, 0) / count}
    notice = [o.noticed - finished["callback"][o.job_id] for o in callback_outcomes if o.noticed is not None]
    returned = [o.returned - finished["callback"][o.job_id] for o in callback_outcomes]
    confirmed = [o.confirmed - finished["callback"][o.job_id] for o in callback_outcomes]
    polled = [o.returned - finished["polling"][o.job_id] for o in polling_outcomes]
    safety = sum(o.safety_polls for o in callback_outcomes)
    print()
    print(f"(a) callback  GETs per job {gets['callback']:5.2f}   (safety polls: {safety}, notices: {len(notice)})")
    print(f"    completion -> notice          {describe(notice)}")
    print(f"    completion -> wait() returns  {describe(returned)}")
    print(f"    completion -> confirming GET  {describe(confirmed)}")
    print(f"(b) polling   GETs per job {gets['polling']:5.2f}   (1 s x1.5 up to 30 s)")
    print(f"    completion -> wait() returns  {describe(polled)}")
    print()
    median_callback, median_polling = statistics.median(returned), statistics.median(polled)
    print(f"GETs per job, callback / polling:  {gets['callback'] / gets['polling']:.2f}x")
    print(f"median delay, callback / polling:  {median_callback / median_polling:.3f}x")
    get_ok, delay_ok = gets["callback"] <= 1.2, median_callback <= 0.25
    print(f"target <= 1.2 GET per job with callbacks:      {gets['callback']:.2f}  {'PASS' if get_ok else 'FAIL'}")
    print(f"target median delay <= 0.25 s with callbacks:  {median_callback:.3f} s  {'PASS' if delay_ok else 'FAIL'}")
    return 0 if get_ok and delay_ok else 1


if __name__ == "__main__":
    sys.exit(main())
