"""Bazarr's heaviest request: a 2-hour film's raw PCM (~230 MB) posted to `asr`, against the daemon as a process.

Measured in one run: the daemon's peak RSS growth while it receives, spools, encodes, uploads and answers
(target: <= 50 MB, i.e. the body is never held in memory), bytes sent to Gladia (the emulator's counter) vs
bytes received (target: >= 5x fewer: Opus instead of PCM), Gladia jobs for detect-language + asr + a repeat
(target: 1), and the time of the repeat (served from the ledger) vs the first answer.

    .venv/bin/python bench/bench_integrations.py [--minutes 120]

The client streams the body too: one second of a tone (32,000 bytes) generated once and sent again and again,
so neither side holds the film.
"""

from __future__ import annotations

import argparse
import http.client
import math
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from emulator_process import EmulatorProcess

TRANSCRIBED = str(Path(sys.executable).with_name("transcribed"))
TOKEN = "bench-token-" + os.urandom(8).hex()
BOUNDARY = "bench" + os.urandom(6).hex()
RATE = 16_000


def second_of_tone(frequency: float = 220.0) -> bytes:
    return b"".join(struct.pack("<h", int(5000 * math.sin(2 * math.pi * frequency * i / RATE))) for i in range(RATE))


def seconds_of_pcm(seconds: int) -> Iterator[bytes]:
    block = second_of_tone()
    for index in range(seconds):
        # A small change every second keeps the signal from being one repeated frame.
        yield block[:2 * (index % 100)] + block[2 * (index % 100):]


def post(port: int, path: str, seconds: int) -> tuple[int, int, bytes]:
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"audio_file\"; filename=\"audio_file\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    size = seconds * RATE * 2
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    connection.putrequest("POST", path)
    connection.putheader("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")
    connection.putheader("Content-Length", str(len(head) + size + len(tail)))
    connection.endheaders()
    connection.send(head)
    for chunk in seconds_of_pcm(seconds):
        connection.send(chunk)
    connection.send(tail)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, size, body


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Peak:
    """The highest VmRSS of a process, sampled every 50 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_kib(self.pid))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("the daemon's integrations endpoint did not open")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, default=120)
    args = parser.parse_args()
    seconds = args.minutes * 60
    with tempfile.TemporaryDirectory() as folder, EmulatorProcess(processing_seconds=1.0, api_keys=None) as emulator:
        root = Path(folder)
        port = free_port()
        config = root / "config.toml"
        config.write_text(f"""
[gladia]
base_url = "{emulator.base_url}"
poll_initial_seconds = 0.2
poll_max_seconds = 1.0
[inbox]
paths = ["{root / 'inbox'}"]
[ledger]
path = "{root / 'state' / 'ledger.sqlite3'}"
[log]
format = "json"
[integrations]
listen = "127.0.0.1:{port}"
token = "{TOKEN}"
""")
        (root / "inbox").mkdir()
        environment = {**os.environ, "GLADIA_API_KEY": "bench-key"}
        with open(root / "daemon.log", "wb") as log:
            daemon = subprocess.Popen([TRANSCRIBED, "run", "--config", str(config)], stdout=log,
                                      stderr=subprocess.STDOUT, env=environment)
        try:
            wait_for(port, time.monotonic() + 60)
            time.sleep(1.0)
            idle = rss_kib(daemon.pid)
            peak = Peak(daemon.pid)
            started = time.monotonic()
            status, received, body = post(port, f"/{TOKEN}/detect-language?encode=false", seconds)
            first = time.monotonic() - started
            assert status == 200, body[:300]
            status, _, body = post(port, f"/{TOKEN}/asr?task=transcribe&language=en&output=srt&encode=false",
                                   seconds)
            assert status == 200 and body.startswith(b"1\n"), body[:300]
            started = time.monotonic()
            status, _, body = post(port, f"/{TOKEN}/asr?output=vtt&encode=false", seconds)
            repeat = time.monotonic() - started
            assert status == 200, body[:300]
            highest = max(peak.stop(), rss_kib(daemon.pid, "VmHWM"))
            uploaded = emulator.counters()["bytes_uploaded"]
            jobs = len(emulator.jobs())
        finally:
            daemon.terminate()
            daemon.wait(60)
    print(f"PCM body: {args.minutes} min, {received / 1e6:.0f} MB per request, 3 requests")
    print(f"daemon RSS: idle {idle / 1024:.1f} MiB, peak {highest / 1024:.1f} MiB, "
          f"growth {(highest - idle) / 1024:.1f} MiB (target <= 50 MB)")
    print(f"bytes sent to Gladia: {uploaded / 1e6:.1f} MB for {received / 1e6:.0f} MB received: "
          f"{received / max(1, uploaded):.1f}x fewer (target >= 5x)")
    print(f"Gladia jobs for detect-language + asr + a repeat: {jobs} (target 1)")
    print(f"first answer (receive, encode, upload, job): {first:.1f} s; the repeat from the ledger: {repeat:.1f} s "
          f"({repeat / first:.2f}x; both include sending {received / 1e6:.0f} MB over loopback)")
    return 0 if jobs == 1 and highest - idle <= 50 * 1024 and received >= 5 * uploaded else 1


if __name__ == "__main__":
    raise SystemExit(main())
