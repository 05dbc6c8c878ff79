"""Start-up over 100,000 finished files (issue 4): the time `transcribed once` takes to exit (it exits once
nothing is pending: "until idle") as a ratio to `find INBOX -type f` over the same tree in the same run, and
the number of files hashed (target: 0 hashed, at most 5x).

    .venv/bin/python bench/bench_startup.py [--files 100000] [--rounds 3] [--profile] [--dir DIR]

The tree: `files` tiny .mp3 files (distinct bytes) in nested folders, each with its `<stem>.txt` output beside
it. The ledger is filled directly with `transcribed.ledger.Ledger`, as the pipeline leaves a finished file:
record_seen with the file's real stat and its real fingerprint, store_result with a tiny valid done job,
mark_done with the existing .txt; [output] formats = ["txt"]. It is filled on /dev/shm when there is one (every
transition is an fsynced transaction: 300,000 of them on disk would take long) and then moved next to the tree.
`find` and `once` alternate `rounds` times after one uncounted warm-up of each (a warm dentry cache for both);
medians. Files hashed = "file_discovered" events in `once`'s JSON log at level info (a new content was hashed
and recorded). Two reference rows put the ratio in context: `transcribed --version` (start-up and imports) and
a bare Python scandir walk that lstats each media file (the least any stat fast path in Python costs); and
`find -printf '%i %s %T@ %p'`, a find that stats every file as the fast path must.
`--profile` then times each step of `once` in-process (open, the settled set, the scan, the page check) and
runs `once` under cProfile to print the hot spots.
`--output-directory` puts the outputs in a mirrored tree ([output] directory) instead of beside each file.
The package's bytecode is compiled first (as `pip install` does), so an editable install in an environment
with PYTHONDONTWRITEBYTECODE does not compile every module at every start.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import io
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from transcribed.ledger import Ledger

KEY = "bench-startup-key"
TRANSCRIBED = Path(sys.executable).with_name("transcribed")
PER_FOLDER = 100
RATIO_TARGET = 5.0


def tiny_job(index: int) -> dict[str, Any]:
    """A done job body the daemon's parser and renderers accept: one utterance of one word."""
    word = {"word": f"file{index}", "start": 0.0, "end": 0.5, "confidence": 0.9}
    return {
        "id": f"00000000-0000-4000-8000-{index:012d}", "request_id": f"G-{index}", "version": 2,
        "status": "done", "created_at": "2024-01-03T11:11:03.872Z", "completed_at": "2024-01-03T11:11:05.872Z",
        "custom_metadata": {"transcribed_attempt": f"bench-{index}"}, "error_code": None, "kind": "pre-recorded",
        "file": {"id": f"file-{index}", "filename": f"recording {index:06d}.mp3", "source": None,
                 "audio_duration": 1.0, "number_of_channels": 1},
        "request_params": {"audio_url": f"https://api.gladia.io/file/file-{index}"},
        "result": {
            "metadata": {"audio_duration": 1.0, "number_of_distinct_channels": 1, "billing_time": 1.0,
                         "transcription_time": 0.5},
            "transcription": {"languages": ["en"], "full_transcript": word["word"], "utterances": [
                {"words": [word], "text": word["word"], "language": "en", "start": 0.0, "end": 0.5,
                 "confidence": 0.9, "channel": 0, "speaker": 0}]},
        },
    }


def build(inbox: Path, ledger_path: Path, count: int, outputs: Path | None) -> None:
    """The tree (media + a .txt beside each, or in a mirrored tree under `outputs`) and a ledger that knows every
    file as done with its output."""
    with Ledger.open(ledger_path) as ledger:
        for index in range(count):
            # nested: inbox/group-NN/folder-NNNN/recording NNNNNN.mp3, PER_FOLDER files per folder
            folder = inbox / f"group-{index // (PER_FOLDER * 100):02d}" / f"folder-{index // PER_FOLDER:04d}"
            if index % PER_FOLDER == 0:
                folder.mkdir(parents=True)
            media = folder / f"recording {index:06d}.mp3"
            content = b"ID3" + index.to_bytes(8, "big")
            media.write_bytes(content)
            text_folder = folder if outputs is None else outputs / folder.relative_to(inbox)
            if outputs is not None and index % PER_FOLDER == 0:
                text_folder.mkdir(parents=True)
            text = text_folder / f"recording {index:06d}.txt"
            transcript = f"file{index}\n".encode()
            text.write_bytes(transcript)
            info = media.stat()
            key = "sha256:" + hashlib.sha256(content).hexdigest()
            ledger.record_seen(key, str(media), str(inbox), info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
            ledger.store_result(key, tiny_job(index))
            ledger.mark_done(key, {str(text): "sha256:" + hashlib.sha256(transcript).hexdigest()})
            if (index + 1) % 20_000 == 0:
                print(f"  {index + 1} files recorded", flush=True)


def write_config(path: Path, inbox: Path, ledger: Path, outputs: Path | None) -> None:
    directory = "" if outputs is None else str(outputs)
    path.write_text(f"""\
[gladia]
base_url = "http://127.0.0.1:9"   # never called: nothing is pending

[inbox]
paths = [{json.dumps(str(inbox))}]
settle_seconds = 0.5

[output]
formats = ["txt"]
directory = {json.dumps(directory)}

[ledger]
path = {json.dumps(str(ledger))}

[workers]
concurrency = 8

[log]
format = "json"
level = "info"
""", encoding="utf-8")


def environment() -> dict[str, str]:
    environ = {name: value for name, value in os.environ.items() if not name.startswith(("TRANSCRIBED_", "GLADIA_"))}
    environ["GLADIA_API_KEY"] = KEY
    return environ


def time_find(inbox: Path, *extra: str) -> float:
    started = time.perf_counter()
    subprocess.run(["find", str(inbox), "-type", "f", *extra], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def time_once(config: Path) -> tuple[float, list[dict[str, Any]]]:
    """Seconds from start to exit of `transcribed once`, and its log events."""
    started = time.perf_counter()
    completed = subprocess.run([str(TRANSCRIBED), "once", "--config", str(config)], env=environment(),
                               capture_output=True, check=False, timeout=1800)
    seconds = time.perf_counter() - started
    events = []
    for line in completed.stdout.decode("utf-8", "replace").splitlines():   # the daemon logs to stdout
        try:
            events.append(json.loads(line))
        except ValueError:
            events.append({"event": "unparsed", "line": line})
    if completed.returncode != 0:
        raise RuntimeError(f"transcribed once exited {completed.returncode}: {events[-5:]} {completed.stderr[-500:]!r}")
    return seconds, events


FLOOR = r"""
import os, sys
stack = [sys.argv[1]]
while stack:
    with os.scandir(stack.pop()) as listing:
        for item in listing:
            if item.is_dir(follow_symlinks=False):
                stack.append(item.path)
            elif item.name.endswith(".mp3"):
                item.stat(follow_symlinks=False)
"""


def time_floor(inbox: Path) -> float:
    """A bare Python process walking the tree with os.scandir and lstat-ing each media file: what any stat
    fast path written in Python costs at least (for reference; not a target)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", FLOOR, str(inbox)], check=True)
    return time.perf_counter() - started


def time_version() -> float:
    """`transcribed --version`: interpreter start-up and the CLI's imports."""
    started = time.perf_counter()
    subprocess.run([str(TRANSCRIBED), "--version"], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def breakdown(config_path: Path) -> None:
    """Time, in this process and without a profiler, each step of `once` over a finished inbox: open the
    ledger, read back the settled set, scan against it, and (after an unclean stop) the page check."""
    from transcribed import config as configuration
    from transcribed.inbox.scan import scan
    from transcribed.ledger import repair as ledger_repair
    from transcribed.pipeline import settled

    loaded, _ = configuration.load(config_path, environment())
    steps: list[tuple[str, float]] = []

    def timed(name: str, action: Any) -> Any:
        started = time.perf_counter()
        value = action()
        steps.append((name, time.perf_counter() - started))
        return value

    ledger = timed("Ledger.open (no page check)", lambda: Ledger.open(loaded.ledger.path, check_pages=False))
    with ledger:
        known, _ = timed("settled.load", lambda: settled.load(ledger, loaded))
        ready, _ = timed("inbox.scan.scan against it (a stat per file)", lambda: scan(
            loaded.inbox, settled_before_ns=time.time_ns(), known=known))
        timed("page check, when the stop was not clean", ledger_repair.check_pages_aside(loaded.ledger.path))
    files = settled.count(known)
    print(f"\n--- where `once` spends its time ({files} known files, {len(ready)} to do; in-process, no profiler) ---")
    for name, seconds in steps:
        print(f"{name:<48}{seconds:7.2f} s  {seconds / max(1, files) * 1e6:6.1f} us/file")


def profile(config: Path, base: Path) -> None:
    """Run `once` under cProfile (in a child, as the command runs) and print the hot spots."""
    output = base / "once.prof"
    subprocess.run([sys.executable, "-m", "cProfile", "-o", str(output), "-m", "transcribed", "once", "--config",
                    str(config)], env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True, timeout=3600)
    for order in ("tottime", "cumulative"):
        stream = io.StringIO()
        pstats.Stats(str(output), stream=stream).sort_stats(order).print_stats(22)
        text = stream.getvalue()
        print(f"\n--- cProfile of `transcribed once`, by {order} ---")
        print(text[text.find("   ncalls"):].rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true",
                        help="then time each step of `once` in-process, and profile `once` with cProfile")
    parser.add_argument("--output-directory", action="store_true",
                        help="outputs in a mirrored tree ([output] directory) instead of beside each file")
    parser.add_argument("--dir", type=Path, default=None, help="where to build the tree (default: a temp dir)")
    arguments = parser.parse_args()

    import transcribed

    compileall.compile_dir(str(Path(transcribed.__file__).parent), quiet=1)
    base = Path(tempfile.mkdtemp(prefix="bench-startup-", dir=arguments.dir))
    shm = Path("/dev/shm")
    scratch = Path(tempfile.mkdtemp(prefix="bench-startup-ledger-", dir=shm)) if shm.is_dir() else None
    try:
        inbox = base / "inbox"
        state = base / "state"
        state.mkdir()
        ledger_path = state / "ledger.sqlite3"
        print(f"building {arguments.files} files (+ a .txt each) and their ledger rows under {base} ...", flush=True)
        began = time.perf_counter()
        outputs = base / "outputs" if arguments.output_directory else None
        build(inbox, (scratch or state) / "ledger.sqlite3", arguments.files, outputs)
        if scratch is not None:
            shutil.move(scratch / "ledger.sqlite3", ledger_path)   # closed cleanly: no -wal left beside it
        print(f"built in {time.perf_counter() - began:.0f} s; ledger {ledger_path.stat().st_size / 1e6:.1f} MB",
              flush=True)
        config = state / "config.toml"
        write_config(config, inbox, ledger_path, outputs)

        time_find(inbox)
        time_once(config)
        finds, onces, ratios, hashed, floors, versions, stat_finds, events_seen = [], [], [], [], [], [], [], []
        for round_number in range(arguments.rounds):
            if round_number % 2 == 0:
                found = time_find(inbox)
                took, events = time_once(config)
            else:
                took, events = time_once(config)
                found = time_find(inbox)
            floors.append(time_floor(inbox))
            stat_finds.append(time_find(inbox, "-printf", "%i %s %T@ %p\\n"))
            versions.append(time_version())
            finds.append(found)
            onces.append(took)
            ratios.append(took / found)
            hashed.append(sum(1 for event in events if event.get("event") == "file_discovered"))
            events_seen = events
            print(f"  round {round_number + 1}: find {found:6.2f} s   once {took:6.2f} s   {took / found:5.1f}x   "
                  f"hashed {hashed[-1]}", flush=True)
        finished = [event for event in events_seen if event.get("event") == "once_finished"]
        republished = [event for event in events_seen if event.get("event") in ("known_content_new_path",
                                                                                  "transcript_written")]
        ratio = statistics.median(ratios)
        in_tree = arguments.files * (1 if arguments.output_directory else 2)
        print(f"\n{arguments.files} finished files ({in_tree} files in the inbox tree), medians of {arguments.rounds}")
        baseline = statistics.median(finds)
        rows = [("find INBOX -type f (baseline)", baseline, ""),
                ("ref: find -printf '%i %s %T@ %p'", statistics.median(stat_finds), "find with a stat per file"),
                ("ref: Python scandir + lstat", statistics.median(floors), "the floor of a stat fast path in Python"),
                ("ref: transcribed --version", statistics.median(versions), "start-up and imports alone"),
                ("transcribed once", statistics.median(onces),
                 f"target <= {RATIO_TARGET:.0f}x: {'PASS' if ratio <= RATIO_TARGET else 'MISS'}")]
        for label, seconds, note in rows:
            shown = ratio if label == "transcribed once" else seconds / baseline
            print(f"{label:<34}{seconds:7.2f} s {shown:6.1f}x   {note}".rstrip())
        print(f"files hashed: {max(hashed)} in the worst round   (target 0: {'PASS' if max(hashed) == 0 else 'MISS'})"
              f";  once_finished: {finished[-1] if finished else 'missing'}")
        print(f"outputs re-published from stored results in the last round: {len(republished)} events "
              "(known_content_new_path / transcript_written; expected 0)")
        if arguments.profile:
            breakdown(config)
            profile(config, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
