"""Loading: find the file, read the TOML, parse every section and check them together.

Every problem is reported at once (ConfigError.problems); warnings come back beside the config. The
environment is an argument: only cli/ reads the process environment.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transcribed.config.api import parse_gladia, parse_transcription
from transcribed.config.files import parse_inbox, parse_media, parse_output, parse_skip
from transcribed.config.listeners import parse_callback, parse_integrations, parse_metrics
from transcribed.config.model import (
    DEFAULT_PATH,
    BudgetConfig,
    Config,
    HooksConfig,
    LedgerConfig,
    LogConfig,
    TranscriptionConfig,
    WorkersConfig,
)
from transcribed.config.sections import Section
from transcribed.errors import ConfigError


def find_path(explicit: Path | None, environ: Mapping[str, str]) -> tuple[Path | None, bool]:
    """Given --config and the environment, return (path to read or None, whether it must exist)."""
    if explicit is not None:
        return explicit, True
    if environ.get("TRANSCRIBED_CONFIG"):
        return Path(environ["TRANSCRIBED_CONFIG"]), True
    if DEFAULT_PATH.exists():
        return DEFAULT_PATH, True
    return None, False


def load(explicit: Path | None, environ: Mapping[str, str]) -> tuple[Config, list[str]]:
    """Given --config (or None) and the environment, return (config, warnings).

    Raise ConfigError listing every problem (dotted key and what was expected) when anything is wrong.
    """
    path, must_exist = find_path(explicit, environ)
    table: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as handle:
                table = tomllib.load(handle)
        except FileNotFoundError:
            if must_exist:
                raise ConfigError([f"config file not found: {path}"], str(path)) from None
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError([f"cannot read config: {exc}"], str(path)) from None
    return parse(table, path, environ)


def parse(table: Mapping[str, Any], path: Path | None, environ: Mapping[str, str]) -> tuple[Config, list[str]]:
    """Given a TOML table, return (config, warnings); raise ConfigError with every problem found."""
    problems: list[str] = []
    warnings: list[str] = []
    base = path.parent if path is not None else None
    sections = {"gladia", "transcription", "inbox", "output", "ledger", "workers", "log", "hooks", "media",
                "callback", "skip", "integrations", "budget", "metrics"}
    for name in sorted(set(table) - sections):
        problems.append(f"{name}: unknown section (expected one of: {', '.join(sorted(sections))})")

    def section(name: str) -> Section:
        return Section(table.get(name, {}), name, problems, base)

    gladia = parse_gladia(section("gladia"), environ, path, problems, warnings)
    transcription = TranscriptionConfig(parse_transcription(table.get("transcription", {}), problems))
    inbox = parse_inbox(section("inbox"))
    output = parse_output(section("output"))
    ledger_section = section("ledger")
    ledger = LedgerConfig(ledger_section.path("path", LedgerConfig.path) or LedgerConfig.path)
    ledger_section.finish()
    workers_section = section("workers")
    workers = WorkersConfig(
        concurrency=workers_section.integer("concurrency", 3, minimum=1, maximum=100),
        queue_size=workers_section.integer("queue_size", 1000, minimum=1, maximum=1_000_000),
        max_job_attempts=workers_section.integer("max_job_attempts", 3, minimum=1, maximum=20),
    )
    workers_section.finish()
    log_section = section("log")
    log = LogConfig(
        format=log_section.string("format", "auto", ("auto", "json", "console")),  # type: ignore[arg-type]
        level=log_section.string("level", "info", ("debug", "info", "warning", "error")),
    )
    log_section.finish()
    hooks_section = section("hooks")
    hooks = HooksConfig(
        on_done=hooks_section.strings("on_done", ()),
        on_failed=hooks_section.strings("on_failed", ()),
        timeout_seconds=hooks_section.number("timeout_seconds", 60.0, above=True),
    )
    hooks_section.finish()
    media = parse_media(section("media"))
    callback = parse_callback(section("callback"))
    skip = parse_skip(table.get("skip", {}), problems)
    integrations = parse_integrations(section("integrations"), warnings)
    budget_section = section("budget")
    budget = BudgetConfig(daily_audio_hours=budget_section.number("daily_audio_hours", 0.0, maximum=1e6),
                          monthly_audio_hours=budget_section.number("monthly_audio_hours", 0.0, maximum=1e6))
    budget_section.finish()
    metrics = parse_metrics(section("metrics"))
    for name, folder in (("output.done_directory", output.done_directory), ("output.directory", output.directory),
                         ("ledger.path", ledger.path), ("media.temp_directory", media.temp_directory)):
        if folder is not None and any(folder.is_relative_to(inbox_path) for inbox_path in inbox.paths):
            problems.append(f"{name}: expected a place outside the inboxes ({folder} is inside one)")
    if problems:
        raise ConfigError(problems, str(path) if path else "")
    config = Config(gladia=gladia, transcription=transcription, inbox=inbox, output=output, ledger=ledger,
                    workers=workers, log=log, hooks=hooks, media=media, callback=callback,
                    skip=skip, integrations=integrations, budget=budget, metrics=metrics, source=path)
    return config, warnings
