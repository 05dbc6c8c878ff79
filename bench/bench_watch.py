"""Inbox watcher figures (issue 3), each printed as a ratio to its budget or to a baseline of the same run.

1. Moved-in latency, native mode: median time from rename() into the inbox to on_ready. Budget 0.3 s.
2. Settle latency: a file written in place whose writer stays open (no close event), so only the quiet
   period can decide; time from its last write to on_ready, minus settle_seconds. Budget 0.5 s.
   Measured in native mode and in polling mode (where the polling interval adds to it).
3. Rescan of an inbox of 100,000 known files vs `find INBOX -type f` on the same tree (budget 3x), as the
   daemon runs it: native observer on, so a rescan stats new and replaced names plus one known file in
   VERIFY_SLICES. Also shown: the full rescan that follows lost events (a stat of every file), against
   `find INBOX -type f -size -1k` (which stats every file too). Each rescan must hand nothing on again.
   An audit hook counts every open(): only directories may be opened.
4. Memory of the watcher's record of 100,000 handed-on files.

Usage: .venv/bin/python bench/bench_watch.py [--files 100000] [--samples 30]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from transcribed.config import InboxConfig
from transcribed.inbox.readiness import ReadyFile
from transcribed.inbox.watcher import VERIFY_SLICES, Watcher

DEADLINE = 60.0


class Arrivals:
    def __init__(self) -> None:
        self.at: dict[Path, float] = {}
        self.count = 0
        self.changed = threading.Condition()

    def __call__(self, item: ReadyFile) -> None:
        with self.changed:
            self.at.setdefault(item.path, time.monotonic())
            self.count += 1
            self.changed.notify_all()

    def wait(self, condition: Callable[[], bool]) -> None:
        with self.changed:
            if not self.changed.wait_for(condition, timeout=DEADLINE):
                raise SystemExit("timed out: the watcher did not hand a file on")


def start(config: InboxConfig, arrivals: Arrivals, **private: Any) -> Watcher:
    watcher = Watcher(config, arrivals, **private)
    watcher.start()
    if not watcher.wait_started(DEADLINE):
        raise SystemExit("watcher did not start")
    return watcher


def moved_in_latency(base: Path, samples: int) -> list[float]:
    inbox, outside = base / "inbox-move", base / "outside"
    inbox.mkdir()
    outside.mkdir(exist_ok=True)
    arrivals = Arrivals()
    watcher = start(InboxConfig(paths=(inbox,), settle_seconds=5.0, observer="native"), arrivals)
    latencies = []
    try:
        for index in range(samples):
            source = outside / f"take-{index}.mp3"
            source.write_bytes(os.urandom(64 * 1024))
            target = inbox / source.name
            moved = time.monotonic()
            source.rename(target)
            arrivals.wait(lambda target=target: target in arrivals.at)  # type: ignore[misc]
            latencies.append(arrivals.at[target] - moved)
    finally:
        watcher.stop()
    return latencies


def settle_latency(base: Path, samples: int, observer: str, settle: float) -> list[float]:
    inbox = base / f"inbox-settle-{observer}"
    inbox.mkdir()
    arrivals = Arrivals()
    watcher = start(InboxConfig(paths=(inbox,), settle_seconds=settle, observer=observer,  # type: ignore[arg-type]
                                polling_interval_seconds=0.25), arrivals)
    pause = threading.Event()
    latencies = []
    try:
        for index in range(samples):
            path = inbox / f"recording-{index}.wav"
            with path.open("wb") as output:          # open through hand-on: no close event helps
                for chunk in range(5):
                    if chunk:
                        pause.wait(0.05)
                    output.write(b"r" * 8192)
                    output.flush()
                last_write = time.monotonic()
                arrivals.wait(lambda path=path: path in arrivals.at)  # type: ignore[misc]
            latencies.append(arrivals.at[path] - last_write - settle)
    finally:
        watcher.stop()
    return latencies


def build_tree(root: Path, files: int, per_folder: int = 1000) -> None:
    for index in range(files):
        folder = root / f"folder-{index // per_folder:04d}"
        if index % per_folder == 0:
            folder.mkdir(parents=True)
        descriptor = os.open(folder / f"recording {index:06d}.mp3", os.O_CREAT | os.O_WRONLY, 0o644)
        os.close(descriptor)


def timed(action: Callable[[], object], repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def deep_size(known: dict[str, dict[str, bytes]]) -> int:
    total = sys.getsizeof(known)
    for directory, names in known.items():
        total += sys.getsizeof(directory) + sys.getsizeof(names)
        total += sum(sys.getsizeof(name) + sys.getsizeof(key) for name, key in names.items())
    return total


def rescan_figures(base: Path, files: int) -> dict[str, float]:
    inbox = base / "inbox-big"
    build_tree(inbox, files)
    arrivals = Arrivals()
    started = time.monotonic()
    # As the daemon runs: native observer, the start scan hands on every file; then time rescans.
    watcher = start(InboxConfig(paths=(inbox,), settle_seconds=0.05, rescan_seconds=86400.0, observer="native"),
                    arrivals)
    try:
        arrivals.wait(lambda: arrivals.count >= files)
        handed_seconds = time.monotonic() - started
        opened_files: list[str] = []

        def audit(event: str, arguments: tuple[Any, ...]) -> None:
            if event == "open" and isinstance(arguments[0], str | bytes) and not os.path.isdir(arguments[0]):
                opened_files.append(os.fsdecode(arguments[0]))

        sys.addaudithook(audit)   # cannot be removed; it only records while `auditing` is set below
        def find(*extra: str) -> float:
            return timed(lambda: subprocess.run(["find", str(inbox), "-type", "f", *extra], check=True,
                                                stdout=subprocess.DEVNULL), 1)

        # find and a rescan in turn, pair by pair, so the machine's drift hits both sides of each ratio
        pairs = [(find(), timed(watcher.rescan, 1)) for _ in range(2 * VERIFY_SLICES)]   # two rounds of turns
        full_pairs = [(find(), find("-size", "-1k"), timed(lambda: watcher.rescan(verify_all=True), 1))
                      for _ in range(3)]
        memory = deep_size(watcher._known)
        # a rescan of known files must hand nothing on again
        again = arrivals.count - files
    finally:
        watcher.stop()
    return {"find": statistics.median(f for f, _ in pairs), "rescan": statistics.median(r for _, r in pairs),
            "ratio": statistics.median(r / f for f, r in pairs), "worst": max(r / f for f, r in pairs),
            "full": statistics.median(r for _, _, r in full_pairs),
            "full_ratio": statistics.median(r / f for f, _, r in full_pairs),
            "full_stat_ratio": statistics.median(r / fs for _, fs, r in full_pairs), "memory": memory,
            "handed_seconds": handed_seconds, "again": again,
            "opened_files": len([path for path in opened_files if path.startswith(str(inbox))])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--settle", type=float, default=1.0)
    arguments = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    base = Path(tempfile.mkdtemp(prefix="bench-watch-"))
    try:
        moved = moved_in_latency(base, arguments.samples)
        settle_native = settle_latency(base, max(5, arguments.samples // 3), "native", arguments.settle)
        settle_polling = settle_latency(base, max(5, arguments.samples // 3), "polling", arguments.settle)
        big = rescan_figures(base, arguments.files)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    median_moved = statistics.median(moved)
    print(f"moved-in latency (native), median of {len(moved)}: {median_moved * 1000:.1f} ms "
          f"= {median_moved / 0.3:.2f} x the 0.3 s budget (max {max(moved) * 1000:.1f} ms)")
    for label, values in (("native", settle_native), ("polling 0.25 s", settle_polling)):
        worst = max(values)
        print(f"settle latency ({label}), last write -> hand-on minus settle_seconds={arguments.settle:g}: "
              f"median {statistics.median(values) * 1000:.0f} ms, worst {worst * 1000:.0f} ms "
              f"= {worst / 0.5:.2f} x the 0.5 s budget")
    files = arguments.files
    print(f"rescan of {files:,} known files (native mode, {2 * VERIFY_SLICES} rescans each after a find): median "
          f"{big['rescan'] * 1000:.0f} ms vs find -type f {big['find'] * 1000:.0f} ms; median ratio "
          f"{big['ratio']:.2f} x (budget 3 x), worst pair {big['worst']:.2f} x")
    print(f"  full rescan after lost events (a stat of every file): {big['full'] * 1000:.0f} ms -> "
          f"{big['full_ratio']:.2f} x find -type f, {big['full_stat_ratio']:.2f} x find -type f -size -1k "
          "(which stats every file too)")
    print(f"  files handed on again by rescans: {big['again']:.0f}; files opened: {big['opened_files']:.0f} "
          f"(directories only are opened); start scan + hand-on of all: {big['handed_seconds']:.1f} s")
    print(f"memory of the record of {files:,} handed-on files: {big['memory'] / 2**20:.1f} MiB "
          f"({big['memory'] / files:.0f} bytes per file)")


if __name__ == "__main__":
    main()
