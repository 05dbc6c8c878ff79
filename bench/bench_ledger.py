"""Ledger benchmark: is "a restart over 100,000 known files costs a stat each, not a hash" true?

Builds a tree of N small files, records each in a fresh ledger (as the pipeline would after hashing), then,
in the same run, times:
  - a plain os.stat loop over every path (the baseline),
  - Ledger.lookup_stat over every path with the stat it already has,
  - a restart scan: os.scandir walk + stat + lookup_stat per file, against a walk + stat alone,
  - the renamed-file path (lookup by identity under a new name),
and prints ratios against the baseline plus the ledger's size on disk. Also how long opening the ledger takes
(quick_check reads the whole file) and `pending()` on a ledger where everything is done.

    .venv/bin/python bench/bench_ledger.py [--files 100000] [--dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from transcribed.ledger import Ledger


def build_tree(root: Path, count: int) -> list[str]:
    paths = []
    for index in range(count):
        folder = root / f"folder-{index // 1000:04d}"
        if index % 1000 == 0:
            folder.mkdir(parents=True)
        path = folder / f"recording {index:06d}.mp3"
        path.write_bytes(index.to_bytes(8, "big"))
        paths.append(str(path))
    return paths


def populate(ledger: Ledger, root: Path, paths: list[str]) -> float:
    started = time.perf_counter()
    for index, path in enumerate(paths):
        info = os.stat(path)
        key = f"sha256:{index:064x}"
        ledger.record_seen(key, path, str(root), info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        ledger.mark_uploading(key)
        ledger.mark_uploaded(key, f"https://api.gladia.io/file/{index}")
        ledger.mark_intent(key, f"attempt-{index}")
        ledger.mark_submitted(key, f"job-{index}", f"https://api.gladia.io/v2/pre-recorded/job-{index}")
        ledger.mark_done(key, {path[:-4] + ".txt": f"sha256:{index:064x}", path[:-4] + ".srt": f"{index}"})
    return time.perf_counter() - started


def best_of(runs: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=None, help="where to build the tree (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the tree and the ledger")
    arguments = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-ledger-", dir=arguments.dir))
    try:
        inbox = base / "inbox"
        print(f"building {arguments.files} files under {inbox} ...", flush=True)
        paths = build_tree(inbox, arguments.files)
        ledger_path = base / "state" / "ledger.sqlite3"
        with Ledger.open(ledger_path) as ledger:
            seconds = populate(ledger, inbox, paths)
            print(f"recorded {len(paths)} files through 6 transitions each in {seconds:.1f} s "
                  f"({seconds / len(paths) / 6 * 1e6:.0f} us per durable transition)")

        started = time.perf_counter()
        ledger = Ledger.open(ledger_path)
        open_seconds = time.perf_counter() - started
        try:
            stats = {path: os.stat(path) for path in paths}

            def stat_loop() -> None:
                for path in paths:
                    os.stat(path)

            def lookup_loop() -> None:
                for path, info in stats.items():
                    if ledger.lookup_stat(path, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns) is None:
                        raise AssertionError(f"known file not recognised: {path}")

            def walk(with_ledger: bool) -> int:
                found = 0
                pending = [str(inbox)]
                while pending:
                    with os.scandir(pending.pop()) as entries:
                        for entry in entries:
                            if entry.is_dir(follow_symlinks=False):
                                pending.append(entry.path)
                                continue
                            info = entry.stat(follow_symlinks=False)
                            if with_ledger:
                                key = ledger.lookup_stat(entry.path, info.st_dev, info.st_ino, info.st_size,
                                                         info.st_mtime_ns)
                                found += key is not None
                return found

            def renamed_loop() -> None:
                for path, info in list(stats.items())[:10_000]:
                    if ledger.lookup_stat(path + ".moved", info.st_dev, info.st_ino, info.st_size,
                                          info.st_mtime_ns) is None:
                        raise AssertionError("renamed file not recognised")

            stat_seconds = best_of(3, stat_loop)
            lookup_seconds = best_of(3, lookup_loop)
            walk_seconds = best_of(3, lambda: walk(False))
            scan_seconds = best_of(3, lambda: walk(True))
            if walk(True) != len(paths):
                raise AssertionError("a known file was not recognised during the walk")
            renamed_seconds = best_of(3, renamed_loop) * len(paths) / min(len(paths), 10_000)
            pending_seconds = best_of(3, ledger.pending)
            counts = ledger.counts()
        finally:
            ledger.close()
        assert counts["done"] == len(paths), counts

        size = sum(os.path.getsize(f"{ledger_path}{suffix}") for suffix in ("", "-wal")
                   if os.path.exists(f"{ledger_path}{suffix}"))
        per_file = [stat_seconds / len(paths) * 1e6, lookup_seconds / len(paths) * 1e6]
        print()
        print(f"files                                 {len(paths):>10}")
        print(f"os.stat loop (baseline)               {stat_seconds:>10.3f} s  ({per_file[0]:.1f} us/file)")
        print(f"lookup_stat loop                      {lookup_seconds:>10.3f} s  ({per_file[1]:.1f} us/file)"
              f"  ratio {lookup_seconds / stat_seconds:.2f}x")
        print(f"renamed-file lookups (scaled)         {renamed_seconds:>10.3f} s"
              f"  ratio {renamed_seconds / stat_seconds:.2f}x")
        print(f"walk + stat                           {walk_seconds:>10.3f} s")
        print(f"walk + stat + lookup_stat (restart)   {scan_seconds:>10.3f} s"
              f"  ratio {scan_seconds / walk_seconds:.2f}x the walk alone")
        print(f"Ledger.open (with quick_check)        {open_seconds:>10.3f} s")
        print(f"pending() with everything done        {pending_seconds * 1e3:>10.3f} ms")
        print(f"ledger size                           {size / 2**20:>10.1f} MiB"
              f"  ({size / len(paths):.0f} bytes/file)")
    finally:
        if arguments.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
