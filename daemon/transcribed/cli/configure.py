"""`transcribed config check|init|show`: validate, create or print the configuration."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import tomli_w

from transcribed import config
from transcribed.cli.shell import EX_FAILED, EX_OK, load_config, usage


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add `config` and its actions."""
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
    cfg.set_defaults(handler=lambda args: usage(cfg))


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
