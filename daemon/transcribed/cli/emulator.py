"""`transcribed emulator`: run the built-in Gladia-compatible emulator (tests, an offline try); and the one
`transcribed run --emulator` starts in the same process."""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from transcribed.cli.shell import EX_OK, install_stop_signals
from transcribed.config import Config, Secret


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add `emulator`."""
    parser = commands.add_parser(
        "emulator", parents=[common], help="run the built-in Gladia-compatible emulator",
        description="Run a local Gladia v2 emulator (for tests and for trying transcribed without a key). "
                    "Transcripts it returns are emulated, not real.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8321, help="port (default 8321; 0 picks a free one)")
    parser.add_argument("--api-key-file", type=Path,
                        help="accept only the key in this file (default: accept any non-empty key)")
    parser.add_argument("--data-dir", type=Path, help="where uploads are kept (default: a temp dir)")
    parser.add_argument("--processing-seconds", type=float, default=1.0,
                        help="how long each job takes to process (default 1.0)")
    parser.add_argument("--max-concurrent-jobs", type=int, default=25, help="jobs processed at once")
    parser.set_defaults(handler=cmd_emulator)


def cmd_emulator(args: argparse.Namespace) -> int:
    from transcribed import emulator

    keys = None
    if args.api_key_file:
        keys = frozenset({args.api_key_file.read_text(encoding="utf-8").strip()})
    settings = emulator.EmulatorSettings(
        host=args.host, port=args.port, api_keys=keys, data_dir=args.data_dir,
        processing_seconds=args.processing_seconds, max_concurrent_jobs=args.max_concurrent_jobs)
    stop = threading.Event()
    install_stop_signals(stop, on_second=None)

    def announce(url: str) -> None:
        print(f"Gladia emulator listening on {url} (transcripts are emulated); Ctrl-C stops it", flush=True)

    emulator.serve(settings, emulator.Faults(), stop, announce)
    return EX_OK


@contextlib.contextmanager
def emulated(loaded: Config, wanted: bool) -> Iterator[Config]:
    """`loaded` as it is, or (`wanted`) pointed at a built-in emulator running until the block ends, with a
    key of its own; without a config file the inbox is ./inbox and the ledger ./.transcribed/."""
    if not wanted:
        yield loaded
        return
    from transcribed import emulator

    if loaded.source is None:
        here = Path.cwd()
        loaded = replace(loaded, inbox=replace(loaded.inbox, paths=(here / "inbox",)),
                         ledger=replace(loaded.ledger, path=here / ".transcribed" / "ledger.sqlite3"))
        for path in loaded.inbox.paths:
            path.mkdir(parents=True, exist_ok=True)
    key = "emulator-" + uuid.uuid4().hex
    settings = emulator.EmulatorSettings(api_keys=frozenset({key}), processing_seconds=1.0)
    with emulator.Emulator(settings) as running:
        print(f"transcribed: using the built-in Gladia emulator at {running.base_url} (transcripts are emulated); "
              f"inbox: {', '.join(str(p) for p in loaded.inbox.paths)}", file=sys.stderr)
        yield replace(loaded, gladia=replace(loaded.gladia, base_url=running.base_url, api_key=Secret(key)))
