"""The entry point of the `transcribed` command: the parser, then the chosen command's handler.

Each command group registers itself from its own module (daemon, ledger, transcribe, configure, emulator);
they share cli/shell.py. Nothing imports this module back.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

from transcribed import __version__
from transcribed.cli.shell import EX_USAGE, print_config_error
from transcribed.config import EX_CONFIG
from transcribed.errors import ConfigError


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
        print_config_error(exc)
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

    from transcribed.cli import configure, daemon, emulator, ledger, transcribe

    for group in (daemon, ledger, transcribe, configure, emulator):
        group.register(commands, common)
    return parser
