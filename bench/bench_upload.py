"""Uploading a 700 MB file to the emulator (issue 2): the client's peak RSS growth and its throughput, as a
ratio to a bare httpx streaming multipart upload of the same file measured in the same run.

    .venv/bin/python bench/bench_upload.py [--megabytes 700] [--rounds 3]

(a) `transcribed.gladia.client.GladiaClient(base_url, key).upload(path)`;
(b) `httpx.Client().post(url, files={"audio": (name, handle, "application/octet-stream")}, ...)`.
Each upload runs in a fresh child process that measures its own peak RSS growth (VmHWM after the upload minus
VmRSS before it, the peak reset through /proc/self/clear_refs; ru_maxrss where that is refused) and the upload's
wall time. The emulator runs in a process of its own, so its memory and CPU are not the client's. After one
uncounted warm-up upload of each, a and b alternate `rounds` times (which goes first alternates too); the
medians are reported, and the throughput ratio is the median of the per-round ratios.
Targets: (a)'s peak RSS growth <= 50 MB; (a)'s throughput >= 0.8x (b)'s.
The file is a WAV header followed by os.urandom bytes (the emulator reads its duration from the header instead
of running ffprobe over 700 MB), written once into a temp dir that is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from emulator_process import EmulatorProcess

KEY = "bench-upload-key"
CHUNK = 4 * 1024 * 1024
RSS_TARGET_MB = 50.0
RATIO_TARGET = 0.8


def write_file(path: Path, size: int) -> None:
    """A RIFF/WAVE header (48 kHz, stereo, 32-bit: about 30 min for 700 MB) and random bytes up to `size`."""
    data_bytes = size - 44
    header = b"RIFF" + struct.pack("<I", size - 8) + b"WAVE" + b"fmt " + struct.pack(
        "<IHHIIHH", 16, 1, 2, 48_000, 48_000 * 8, 8, 32) + b"data" + struct.pack("<I", data_bytes)
    with open(path, "wb") as handle:
        handle.write(header)
        left = data_bytes
        while left > 0:
            block = os.urandom(min(CHUNK, left))
            handle.write(block)
            left -= len(block)


# ------------------------------------------------------------------------------------------------- child side


def _status_kb(field: str) -> int | None:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")   # resets VmHWM to the current RSS (Linux >= 4.0)
    except OSError:
        return False
    return True


def child(variant: str, base_url: str, path: Path) -> None:
    """Upload `path` once with the variant's client; print one JSON line with what was measured."""
    import httpx

    from transcribed.gladia.client import GladiaClient

    reset = _reset_peak()
    before_kb = _status_kb("VmRSS") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    if variant == "a":
        with GladiaClient(base_url, KEY) as client:
            audio_url = client.upload(path).audio_url
    else:
        with httpx.Client(timeout=300.0) as bare, open(path, "rb") as handle:
            response = bare.post(base_url + "/v2/upload", headers={"x-gladia-key": KEY},
                                 files={"audio": (path.name, handle, "application/octet-stream")})
            response.raise_for_status()
            audio_url = response.json()["audio_url"]
    seconds = time.perf_counter() - started
    peak_kb = _status_kb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "before_kb": before_kb, "peak_kb": peak_kb, "audio_url": audio_url,
                      "peak_source": "VmHWM" if reset else "ru_maxrss"}))


# ------------------------------------------------------------------------------------------------- parent side


def run_child(variant: str, base_url: str, path: Path) -> dict[str, float]:
    completed = subprocess.run([sys.executable, __file__, "--child", variant, "--url", base_url, "--file", str(path)],
                               capture_output=True, text=True, timeout=900, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"upload {variant} failed ({completed.returncode}): {completed.stderr[-2000:]}")
    result: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=700, help="file size in MB (10^6 bytes)")
    parser.add_argument("--rounds", type=int, default=5, help="uploads per variant (alternating a, b)")
    parser.add_argument("--child", choices=("a", "b"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        child(arguments.child, arguments.url, arguments.file)
        return

    size = arguments.megabytes * 1_000_000
    base = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    try:
        source = base / "long recording.wav"
        began = time.perf_counter()
        write_file(source, size)
        print(f"wrote {size / 1e6:.0f} MB of random bytes in {time.perf_counter() - began:.1f} s", flush=True)
        stored = base / "emulator"
        samples: dict[str, list[dict[str, float]]] = {"a": [], "b": []}
        with EmulatorProcess(data_dir=str(stored), max_upload_bytes=size + 1_000_000) as emulator:
            for variant in ("a", "b"):   # warm-up, not counted: the first upload of a run is often slower
                run_child(variant, emulator.base_url, source)
                shutil.rmtree(stored / "files", ignore_errors=True)
                (stored / "files").mkdir(exist_ok=True)
            emulator.reset()
            for round_number in range(arguments.rounds):
                # Alternate which goes first, so a drift in the machine's speed does not favour one.
                order = ("a", "b") if round_number % 2 == 0 else ("b", "a")
                for variant in order:
                    sample = run_child(variant, emulator.base_url, source)
                    samples[variant].append(sample)
                    shutil.rmtree(stored / "files", ignore_errors=True)   # keep the disk free between rounds
                    (stored / "files").mkdir(exist_ok=True)
                    growth = (sample["peak_kb"] - sample["before_kb"]) / 1024
                    print(f"  round {round_number + 1} {variant}: {size / sample['seconds'] / 1e6:7.1f} MB/s, "
                          f"peak RSS growth {growth:6.1f} MB", flush=True)
            uploaded = emulator.counters().get("bytes_uploaded", 0)
        if uploaded != size * 2 * arguments.rounds:
            print(f"WARNING: the emulator received {uploaded} bytes, expected {size * 2 * arguments.rounds}")
    finally:
        shutil.rmtree(base, ignore_errors=True)

    def medians(variant: str) -> tuple[float, float]:
        rate = statistics.median(size / s["seconds"] / 1e6 for s in samples[variant])
        growth = statistics.median((s["peak_kb"] - s["before_kb"]) / 1024 for s in samples[variant])
        return rate, growth

    rate_a, growth_a = medians("a")
    rate_b, growth_b = medians("b")
    worst_a = max((s["peak_kb"] - s["before_kb"]) / 1024 for s in samples["a"])
    ratio = statistics.median(b["seconds"] / a["seconds"] for a, b in zip(samples["a"], samples["b"], strict=True))
    print(f"\n{size / 1e6:.0f} MB upload, medians of {arguments.rounds} (peak from "
          f"{samples['a'][0]['peak_source']})")
    print(f"{'client':<34}{'MB/s':>9}{'peak RSS growth':>18}")
    print(f"{'(b) bare httpx multipart (baseline)':<34}{rate_b:9.1f}{growth_b:15.1f} MB")
    print(f"{'(a) GladiaClient.upload':<34}{rate_a:9.1f}{growth_a:15.1f} MB")
    print(f"(a) peak RSS growth: {growth_a:.1f} MB median, {worst_a:.1f} MB worst   "
          f"(target <= {RSS_TARGET_MB:.0f} MB: {'PASS' if worst_a <= RSS_TARGET_MB else 'MISS'})")
    print(f"(a) throughput / (b): {ratio:.2f}x median of the per-round ratios ({rate_a / rate_b:.2f}x of the medians)"
          f"   (target >= {RATIO_TARGET}x: "
          f"{'PASS' if ratio >= RATIO_TARGET else 'MISS'})")


if __name__ == "__main__":
    main()
