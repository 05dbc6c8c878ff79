"""The [gladia] section (where the API is, the key, timeouts and retries) and the [transcription] section
(the request body, validated against Gladia's schema), with the per-folder request overrides.

The key comes from, in order: gladia.api_key, the systemd credential, gladia.api_key_file, GLADIA_API_KEY in
the environment the caller passes in.
"""

from __future__ import annotations

import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from transcribed.config.model import CREDENTIAL_NAME, DAEMON_OWNED_FIELDS, GladiaConfig, Secret
from transcribed.config.sections import Section
from transcribed.gladia import schema as request_schema


def parse_gladia(s: Section, environ: Mapping[str, str], path: Path | None, problems: list[str],
                  warnings: list[str]) -> GladiaConfig:
    base_url = s.string("base_url", GladiaConfig.base_url).rstrip("/")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.username or parts.password:
        problems.append(f"gladia.base_url: expected an http(s) URL without credentials, got {base_url!r}")
    key_text = s.optional_string("api_key")
    key_file = s.path("api_key_file", None)
    if key_text is not None and key_file is not None:
        problems.append("gladia.api_key: set either api_key or api_key_file, not both")
    if key_text is not None and path is not None:
        _warn_if_shared(path, warnings)
    if key_text is None and environ.get("CREDENTIALS_DIRECTORY"):
        # The systemd credential comes before api_key_file: under the unit, the file it was loaded from is
        # root-only and unreadable by the service user.
        credential = Path(environ["CREDENTIALS_DIRECTORY"]) / CREDENTIAL_NAME
        if credential.exists():
            key_text = _read_key_file(credential, "systemd credential " + CREDENTIAL_NAME, problems)
    if key_text is None and key_file is not None:
        key_text = _read_key_file(key_file, "gladia.api_key_file", problems)
    if key_text is None and environ.get("GLADIA_API_KEY", "").strip():
        key_text = environ["GLADIA_API_KEY"].strip()
    initial = s.number("poll_initial_seconds", 1.0, above=True, maximum=60)
    config = GladiaConfig(
        base_url=base_url,
        api_key=Secret(key_text) if key_text else None,
        api_key_file=key_file,
        request_timeout_seconds=s.number("request_timeout_seconds", 30.0, above=True),
        upload_timeout_seconds=s.number("upload_timeout_seconds", 300.0, above=True),
        max_attempts=s.integer("max_attempts", 6, minimum=1, maximum=100),
        retry_deadline_seconds=s.number("retry_deadline_seconds", 600.0, above=True),
        poll_initial_seconds=initial,
        poll_max_seconds=s.number("poll_max_seconds", 30.0, minimum=initial),
        outage_probe_seconds=s.number("outage_probe_seconds", 60.0, above=True),
        key_check_seconds=s.number("key_check_seconds", 30.0, above=True, maximum=600),
    )
    s.finish()
    return config


def _read_key_file(path: Path, where: str, problems: list[str]) -> str | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{where}: cannot read {path}: {exc.__class__.__name__}")
        return None
    if not text:
        problems.append(f"{where}: {path} is empty")
        return None
    return text


def _warn_if_shared(path: Path, warnings: list[str]) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        warnings.append(f"{path} holds gladia.api_key and is readable by group or others: "
                        f"run `chmod 600 {path}`, or move the key to api_key_file or a systemd credential")


def parse_transcription(table: object, problems: list[str], *, combinations: bool = True) -> dict[str, Any]:
    """Given a [transcription] table, return the request fields it sets (shortcuts expanded), each validated
    against Gladia's schema; `combinations` also checks them together (off for a per-folder table, whose
    combinations are checked once merged over the main config's, see `merge_request`)."""
    if not isinstance(table, dict):
        problems.append("transcription: expected a table")
        return {}
    request: dict[str, Any] = {}
    language_config = dict(table.get("language_config", {})) if isinstance(table.get("language_config"), dict) \
        else table.get("language_config")
    for shortcut in ("languages", "code_switching"):
        if shortcut in table:
            if not isinstance(language_config, dict):
                language_config = {}
            language_config[shortcut] = table[shortcut]
    fields = request_schema.request_fields()
    for name, value in table.items():
        if name in ("languages", "code_switching", "language_config"):
            continue
        if name in DAEMON_OWNED_FIELDS:
            problems.append(f"transcription.{name}: set by transcribed itself for each job; remove it")
            continue
        if name == "custom_vocabulary" and isinstance(value, list):
            # Shortcut: a plain list of words means "custom_vocabulary = true" with that vocabulary.
            vocabulary_config = dict(table.get("custom_vocabulary_config", {}) or {})
            vocabulary_config["vocabulary"] = value
            request["custom_vocabulary_config"] = vocabulary_config
            value = True
        if name not in fields:
            known = ", ".join(sorted(set(fields) - set(DAEMON_OWNED_FIELDS) | {"languages", "code_switching"}))
            problems.append(f"transcription.{name}: unknown key (expected one of: {known})")
            continue
        if name == "custom_vocabulary_config" and "custom_vocabulary_config" in request:
            continue
        request[name] = value
    if language_config is not None:
        request["language_config"] = language_config
    for name, value in request.items():
        found = request_schema.validate(value, fields[name], f"transcription.{name}")
        if name == "language_config":     # a shortcut's problem under the name the user wrote
            found = [_shortcut_named(problem, table) for problem in found]
        problems.extend(found)
    if combinations:
        problems.extend(check_combinations(request))
    return request


def _shortcut_named(problem: str, table: dict[str, Any]) -> str:
    for shortcut in ("languages", "code_switching"):
        long = f"transcription.language_config.{shortcut}"
        if shortcut in table and problem.startswith(long):
            return f"transcription.{shortcut}" + problem[len(long):]
    return problem


def transcription_overrides(table: object, problems: list[str]) -> dict[str, Any]:
    """A per-folder [transcription] table -> the request fields it overrides (validated one by one)."""
    return parse_transcription(table, problems, combinations=False)


def merge_request(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The request `base` with `overrides` laid over it key by key: a nested table (language_config,
    diarization_config...) is merged one level down, so `languages` alone keeps the base's code_switching."""
    merged = dict(base)
    for name, value in overrides.items():
        below = merged.get(name)
        merged[name] = {**below, **value} if isinstance(below, Mapping) and isinstance(value, Mapping) else value
    return merged


def check_combinations(request: Mapping[str, Any]) -> list[str]:
    """Combinations Gladia would refuse at the first upload, caught at config time instead."""
    problems = []
    for switch in ("diarization", "subtitles", "translation", "summarization", "custom_vocabulary",
                   "custom_spelling", "audio_to_llm", "pii_redaction"):
        if f"{switch}_config" in request and request.get(switch) is not True:
            problems.append(f"transcription.{switch}_config: only used when transcription.{switch} = true; "
                            f"set it or remove the table")
    needs = {"translation": ("translation_config", "target_languages"),
             "custom_vocabulary": ("custom_vocabulary_config", "vocabulary"),
             "custom_spelling": ("custom_spelling_config", "spelling_dictionary"),
             "audio_to_llm": ("audio_to_llm_config", "prompts")}
    for switch, (table_name, key) in needs.items():
        table = request.get(table_name)
        if request.get(switch) is True and not (isinstance(table, dict) and key in table):
            problems.append(f"transcription.{table_name}.{key}: required when transcription.{switch} = true")
    languages = request.get("language_config", {}).get("languages", []) \
        if isinstance(request.get("language_config"), dict) else []
    if request.get("model") == "solaria-3" and (not isinstance(languages, list) or len(languages) != 1):
        problems.append('transcription.languages: model "solaria-3" needs exactly one language, e.g. ["en"]')
    diarization = request.get("diarization_config")
    if isinstance(diarization, dict):
        low, high = diarization.get("min_speakers"), diarization.get("max_speakers")
        if isinstance(low, int) and isinstance(high, int) and low > high:
            problems.append("transcription.diarization_config.min_speakers: expected <= max_speakers")
    subtitles = request.get("subtitles_config")
    if isinstance(subtitles, dict):
        low, high = subtitles.get("minimum_duration"), subtitles.get("maximum_duration")
        if isinstance(low, int | float) and isinstance(high, int | float) and low > high:
            problems.append("transcription.subtitles_config.minimum_duration: expected <= maximum_duration")
    return problems
