"""The composition root: arguments, config, logging, signals, wiring and exit codes.

Only this module reads the environment, installs signal handlers, configures logging and exits.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import structlog
import tomli_w

from transcribed import __version__, config, logs
from transcribed.config import EX_CONFIG, Config
from transcribed.errors import ConfigError

EX_OK = 0
EX_FAILED = 1
EX_USAGE = 2
EX_UNAVAILABLE = 69   # the API (or the emulator) cannot be reached at all
EX_TEMPFAIL = 75      # interrupted; what was in flight resumes on the next run

log = structlog.get_logger("transcribed")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `transcribed` command; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EX_USAGE
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        _print_config_error(exc)
        return EX_CONFIG
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser: every subcommand accepts --config and --help."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, metavar="PATH",
                        help="config file (default: $TRANSCRIBED_CONFIG, else /etc/transcribed/config.toml)")
    parser = argparse.ArgumentParser(
        prog="transcribed",
        description="Turn a folder into a transcription service, built on Gladia's speech-to-text API (v2).",
        parents=[common])
    parser.add_argument("--version", action="version", version=f"transcribed {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    from transcribed import commands_daemon, commands_ledger, commands_oneoff

    commands_daemon.register(commands, common)
    commands_ledger.register(commands, common)
    commands_oneoff.register(commands, common)

    cfg = commands.add_parser("config", help="check, create or show the configuration", parents=[common],
                              description="Check, create or show the configuration.")
    cfg_commands = cfg.add_subparsers(title="actions", metavar="ACTION")
    check = cfg_commands.add_parser("check", parents=[common], help="validate the config; exit 78 when invalid",
                                    description="Validate the config: every problem at once; exit 78 when invalid.")
    check.set_defaults(handler=cmd_config_check)
    init = cfg_commands.add_parser("init", parents=[common], help="write a starter config",
                                   description="Write a starter config file (refuses to overwrite).")
    init.add_argument("path", nargs="?", type=Path, help="where to write it (default: --config, else "
                      f"{config.DEFAULT_PATH})")
    init.add_argument("--inbox", type=Path, action="append", help="inbox folder to watch (repeatable)")
    init.set_defaults(handler=cmd_config_init)
    show = cfg_commands.add_parser("show", parents=[common], help="print the effective config (key masked)",
                                   description="Print the effective config as TOML, the API key masked.")
    show.set_defaults(handler=cmd_config_show)
    cfg.set_defaults(handler=lambda args: _usage(cfg))

    emulator = commands.add_parser(
        "emulator", parents=[common], help="run the built-in Gladia-compatible emulator",
        description="Run a local Gladia v2 emulator (for tests and for trying transcribed without a key). "
                    "Transcripts it returns are emulated, not real.")
    emulator.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    emulator.add_argument("--port", type=int, default=8321, help="port (default 8321; 0 picks a free one)")
    emulator.add_argument("--api-key-file", type=Path,
                          help="accept only the key in this file (default: accept any non-empty key)")
    emulator.add_argument("--data-dir", type=Path, help="where uploads are kept (default: a temp dir)")
    emulator.add_argument("--processing-seconds", type=float, default=1.0,
                          help="how long each job takes to process (default 1.0)")
    emulator.add_argument("--max-concurrent-jobs", type=int, default=25, help="jobs processed at once")
    emulator.set_defaults(handler=cmd_emulator)
    return parser


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EX_USAGE


# ------------------------------------------------------------------------------------------------- config


def load_config(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Config:
    """Load the config named by --config / $TRANSCRIBED_CONFIG / the default path; print warnings."""
    loaded, warnings = config.load(getattr(args, "config", None), os.environ if environ is None else environ)
    for warning in warnings:
        print(f"transcribed: warning: {warning}", file=sys.stderr)
    return loaded


def _print_config_error(exc: ConfigError) -> None:
    where = f" in {exc.source}" if exc.source else ""
    print(f"transcribed: invalid configuration{where} ({len(exc.problems)} problem"
          f"{'s' if len(exc.problems) != 1 else ''}):", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {logs.one_line(problem)}", file=sys.stderr)


def cmd_config_check(args: argparse.Namespace) -> int:
    loaded = load_config(args)
    where = loaded.source or "built-in defaults (no config file)"
    key = "set" if loaded.gladia.api_key else "not set (GLADIA_API_KEY, api_key_file or a systemd credential)"
    print(f"config OK: {where}; API key {key}")
    return EX_OK


def cmd_config_show(args: argparse.Namespace) -> int:
    loaded = load_config(args)
    sys.stdout.write(tomli_w.dumps(config.to_toml_dict(loaded)))
    return EX_OK


def cmd_config_init(args: argparse.Namespace) -> int:
    target: Path = args.path or args.config or config.DEFAULT_PATH
    if target.exists():
        print(f"transcribed: {target} exists; not overwriting it (remove it first, or pick another path)",
              file=sys.stderr)
        return EX_FAILED
    inboxes = [str(p.expanduser().absolute()) for p in (args.inbox or [])] or ["/srv/inbox"]
    starter = {
        "gladia": {"base_url": "https://api.gladia.io"},
        "transcription": {"languages": [], "diarization": False},
        "inbox": {"paths": inboxes, "settle_seconds": 5},
        "output": {"formats": list(config.OutputConfig.formats), "name": "{stem}.{format}"},
        "ledger": {"path": str(config.LedgerConfig.path)},
        "workers": {"concurrency": 3},
    }
    text = ("# transcribed configuration; every key is documented in config.example.toml.\n"
            "# The API key: the systemd credential gladia-api-key, or [gladia] api_key_file = \"PATH\", or the\n"
            "# environment variable GLADIA_API_KEY. Never commit a key to a file others can read.\n"
            + tomli_w.dumps(starter))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    print(f"wrote {target}; check it with: transcribed config check --config {target}")
    return EX_OK


# ------------------------------------------------------------------------------------------------- emulator


def cmd_emulator(args: argparse.Namespace) -> int:
    from transcribed.gladia import emulator

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


# ------------------------------------------------------------------------------------------------- signals


def install_stop_signals(stop: threading.Event, on_second: Callable[[], None] | None,
                         on_first: Callable[[str], None] | None = None) -> None:
    """First SIGTERM/SIGINT sets `stop` (drain); a second calls `on_second` (stop at once)."""
    import signal

    def handler(signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if not stop.is_set():
            stop.set()
            if on_first is not None:
                on_first(name)
        elif on_second is not None:
            on_second()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def setup_logging(loaded: Config, *, stream: object = None) -> logs.Redactor:
    """Configure logs once from the config; the key is redacted from every event."""
    redactor = logs.Redactor([loaded.gladia.api_key.reveal()] if loaded.gladia.api_key else [])
    out = stream if stream is not None else sys.stdout
    return logs.configure(loaded.log.format, loaded.log.level, stream=out, redactor=redactor)  # type: ignore[arg-type]
