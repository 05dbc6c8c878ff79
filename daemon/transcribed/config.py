"""Configuration: TOML -> frozen dataclasses.

Unknown keys and bad values are errors, all reported at once, each with its dotted path and what was
expected (ConfigError.problems). The file is the public contract documented in config.example.toml.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import ipaddress
import os
import stat
import string
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from transcribed.errors import ConfigError
from transcribed.gladia import schema as request_schema
from transcribed.languages import canonical

ObserverMode = Literal["auto", "native", "polling"]
AfterMode = Literal["keep", "move"]
LogFormat = Literal["auto", "json", "console"]
ExtractMode = Literal["auto", "always", "never"]


class Secret:
    """A string that never shows itself in repr/str (logs, tracebacks, config show)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class GladiaConfig:
    base_url: str = "https://api.gladia.io"
    api_key: Secret | None = None          # resolved: file key, api_key_file, env, or systemd credential
    api_key_file: Path | None = None
    request_timeout_seconds: float = 30.0  # connect/read/write for small JSON calls
    upload_timeout_seconds: float = 300.0  # per read/write operation of an upload, not the whole upload
    max_attempts: int = 6                  # per call, for transient errors
    retry_deadline_seconds: float = 600.0  # per call, for transient errors
    poll_initial_seconds: float = 1.0
    poll_max_seconds: float = 30.0
    outage_probe_seconds: float = 60.0     # while the API keeps failing, one probe this often
    key_check_seconds: float = 30.0        # first wait before checking a refused key again (grows to 10 min)


@dataclass(frozen=True)
class TranscriptionConfig:
    # The body of POST /v2/pre-recorded without audio_url / callback / custom_metadata, validated.
    request: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InboxConfig:
    paths: tuple[Path, ...] = (Path("/srv/inbox"),)
    recursive: bool = True
    settle_seconds: float = 5.0            # quiet time before a file written in place counts as complete
    settle_timeout_seconds: float = 86400.0  # a file still changing after this long is reported, not uploaded
    rescan_seconds: float = 600.0          # periodic rescan that catches missed events (with jitter)
    observer: ObserverMode = "auto"
    polling_interval_seconds: float = 5.0  # how often the polling observer looks
    include: tuple[str, ...] = ()          # extra globs that count as media
    exclude: tuple[str, ...] = ()          # globs never taken


@dataclass(frozen=True)
class OutputConfig:
    formats: tuple[str, ...] = ("txt", "srt", "vtt", "json")
    name: str = "{stem}.{format}"
    directory: Path | None = None          # None: beside the source; else a mirrored tree under it
    language_fallback: str = "und"         # {lang} when Gladia detected none
    overwrite: bool = False                # overwrite files at output paths that transcribed did not write
    mode: int | None = None                # permissions of outputs; None follows the umask
    after: AfterMode = "keep"
    done_directory: Path | None = None


@dataclass(frozen=True)
class LedgerConfig:
    path: Path = Path("/var/lib/transcribed/ledger.sqlite3")


@dataclass(frozen=True)
class WorkersConfig:
    concurrency: int = 3                   # jobs in flight (Gladia: 3 on the free plan, 25 on paid)
    queue_size: int = 1000
    max_job_attempts: int = 3              # new jobs after a job ended in a 5xx error


@dataclass(frozen=True)
class LogConfig:
    format: LogFormat = "auto"
    level: str = "info"


@dataclass(frozen=True)
class HooksConfig:
    on_done: tuple[str, ...] = ()          # argv, never a shell; placeholders {source}, {outputs}, ...
    on_failed: tuple[str, ...] = ()
    timeout_seconds: float = 60.0


@dataclass(frozen=True)
class MediaConfig:
    extract_audio: ExtractMode = "auto"    # auto: videos, big or unusual audio files, several audio tracks
    extract_threshold_mb: float = 100.0    # in auto mode, audio files larger than this are extracted
    audio_stream: int | str = ""           # stream number (#0:N as ffprobe prints it), a language code, or ""
    max_duration_minutes: float = 135.0    # Gladia's limit per job (API.md §2); longer media is split
    max_upload_mb: float = 1000.0          # Gladia's upload limit (MB = 1,000,000 bytes); larger is split
    codec: str = "opus"                    # of extracts: opus (Ogg), aac (m4a), mp3, flac, wav
    bitrate_kbps: int = 32                 # per channel, for opus, aac and mp3
    ffmpeg: str = "ffmpeg"                 # a command on PATH or a path
    ffprobe: str = "ffprobe"
    temp_directory: Path | None = None     # None: a private directory under the system temp
    probe_timeout_seconds: float = 60.0


CallbackMethod = Literal["POST", "PUT"]


@dataclass(frozen=True)
class CallbackConfig:
    enabled: bool = False                  # learn of finished jobs by callback/webhook too (polling slows down)
    listen: str = "127.0.0.1:8787"         # where the receiver binds: host:port, IPv6 as "[::1]:8787"
    public_url: str = ""                   # the address Gladia calls (required when enabled), no trailing "/"
    method: CallbackMethod = "POST"        # how Gladia sends the per-job callback
    webhook_secret: Secret | None = None   # Svix "whsec_..." of the account webhook: unsigned ones are refused
    max_body_bytes: int = 16 * 1024 * 1024  # a callback carries the whole result
    safety_poll_seconds: float = 60.0      # jobs in flight are still polled this often, in case a callback is lost

    def address(self) -> tuple[str, int]:
        """Return `listen` as (host, port); raise ValueError when it is not host:port or [IPv6]:port."""
        return _split_listen(self.listen)


@dataclass(frozen=True)
class SkipConfig:
    """What is not sent to Gladia. Overridable per folder: parse_skip(table, ..., base=<the inherited one>)."""

    subtitle_languages: tuple[str, ...] = ()   # ISO 639-1 codes: a file with subtitles in one is not sent


@dataclass(frozen=True)
class PathMapping:
    """A caller's path prefix (`source`, as Sonarr or Bazarr see it) and this host's (`target`)."""

    source: str
    target: str


@dataclass(frozen=True)
class IntegrationsConfig:
    listen: str = ""                       # "": off; else host:port, IPv6 as "[::1]:9000"
    token: Secret | None = None            # when set, every endpoint lives under /<token>/
    library_paths: tuple[Path, ...] = ()   # folders webhooks may name, besides inbox.paths
    path_map: tuple[PathMapping, ...] = ()  # a caller's path prefix -> this host's, longest prefix first
    max_body_mb: float = 1000.0            # larger uploads (Bazarr's PCM is ~115 MB per hour) get 413

    @property
    def enabled(self) -> bool:
        return bool(self.listen)

    def address(self) -> tuple[str, int]:
        """Return `listen` as (host, port); raise ValueError when it is not host:port or [IPv6]:port."""
        return _split_listen(self.listen)


@dataclass(frozen=True)
class BudgetConfig:
    daily_audio_hours: float = 0.0         # 0: no limit. Audio hours sent to Gladia per local day
    monthly_audio_hours: float = 0.0       # 0: no limit. Per calendar month (local time)


@dataclass(frozen=True)
class MetricsConfig:
    listen: str = ""                       # "HOST:PORT": Prometheus text format at GET /metrics; empty: off

    def address(self) -> tuple[str, int]:
        """Return `listen` as (host, port); raise ValueError when it is not host:port or [IPv6]:port."""
        return _split_listen(self.listen)


@dataclass(frozen=True)
class Config:
    gladia: GladiaConfig = field(default_factory=GladiaConfig)
    transcription: TranscriptionConfig = field(default_factory=TranscriptionConfig)
    inbox: InboxConfig = field(default_factory=InboxConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    workers: WorkersConfig = field(default_factory=WorkersConfig)
    log: LogConfig = field(default_factory=LogConfig)
    hooks: HooksConfig = field(default_factory=HooksConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    callback: CallbackConfig = field(default_factory=CallbackConfig)
    skip: SkipConfig = field(default_factory=SkipConfig)
    integrations: IntegrationsConfig = field(default_factory=IntegrationsConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    source: Path | None = None             # the file it came from, if any


# --------------------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------------------

DEFAULT_PATH = Path("/etc/transcribed/config.toml")
EX_CONFIG = 78
OUTPUT_FORMATS = ("txt", "srt", "vtt", "json", "md")
MEDIA_CODECS = ("opus", "aac", "mp3", "flac", "wav")
CREDENTIAL_NAME = "gladia-api-key"
# Request fields the daemon sets itself, per job; never from [transcription].
DAEMON_OWNED_FIELDS = ("audio_url", "callback", "callback_config", "callback_url", "custom_metadata")
_MISSING: Any = object()


class _Section:
    """Reads one TOML table, collecting problems instead of stopping at the first."""

    def __init__(self, table: object, name: str, problems: list[str], base: Path | None) -> None:
        self.name = name
        self.problems = problems
        self.base = base
        if not isinstance(table, dict):
            problems.append(f"{name}: expected a table ([{name}]), got {type(table).__name__}")
            table = {}
        self.table: dict[str, Any] = dict(table)
        self.known: set[str] = set()

    def _get(self, key: str) -> Any:
        self.known.add(key)
        return self.table.get(key, _MISSING)

    def _bad(self, key: str, expected: str, value: object) -> None:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        self.problems.append(f"{self.name}.{key}: expected {expected}, got {shown}")

    def string(self, key: str, default: str, choices: tuple[str, ...] = ()) -> str:
        value = self._get(key)
        if value is _MISSING:
            return default
        if not isinstance(value, str) or (choices and value not in choices):
            expected = "one of " + ", ".join(f'"{c}"' for c in choices) if choices else "a string"
            self._bad(key, expected, value)
            return default
        return value

    def optional_string(self, key: str) -> str | None:
        value = self._get(key)
        if value is _MISSING or value == "":
            return None
        if not isinstance(value, str):
            self._bad(key, "a string", value)
            return None
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            self._bad(key, "true or false", value)
            return default
        return value

    def number(self, key: str, default: float, *, minimum: float = 0.0, above: bool = False,
               maximum: float | None = None) -> float:
        value = self._get(key)
        if value is _MISSING:
            return default
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and (value < minimum or (above and value == minimum) or (maximum is not None and value > maximum)):
            ok = False
        if not ok:
            bound = f"> {minimum:g}" if above else f">= {minimum:g}"
            if maximum is not None:
                bound += f" and <= {maximum:g}"
            self._bad(key, f"a number {bound}", value)
            return default
        return float(value)

    def integer(self, key: str, default: int, *, minimum: int, maximum: int) -> int:
        value = self._get(key)
        if value is _MISSING:
            return default
        if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
            self._bad(key, f"a whole number from {minimum} to {maximum}", value)
            return default
        return value

    def path(self, key: str, default: Path | None) -> Path | None:
        value = self._get(key)
        if value is _MISSING or value == "":
            return default
        if not isinstance(value, str):
            self._bad(key, "a path (string)", value)
            return default
        return self._resolve(value)

    def _resolve(self, text: str) -> Path:
        path = Path(text).expanduser()
        if not path.is_absolute() and self.base is not None:
            path = self.base / path
        return Path(os.path.abspath(path))  # noqa: PTH100 - absolute without resolving symlinks

    def strings(self, key: str, default: tuple[str, ...], *, nonempty: bool = False) -> tuple[str, ...]:
        value = self._get(key)
        if value is _MISSING:
            return default
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or (nonempty and not value):
            self._bad(key, "a non-empty list of strings" if nonempty else "a list of strings", value)
            return default
        return tuple(value)

    def paths(self, key: str, default: tuple[Path, ...]) -> tuple[Path, ...]:
        texts = self.strings(key, (), nonempty=True)
        return tuple(self._resolve(t) for t in texts) if texts else default

    def mode(self, key: str) -> int | None:
        value = self._get(key)
        if value is _MISSING or value == "":
            return None
        if isinstance(value, str):
            try:
                value = int(value, 8)
            except ValueError:
                self._bad(key, 'an octal mode such as "0640" or 0o640', value)
                return None
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0o777:
            self._bad(key, 'an octal mode such as "0640" or 0o640', value)
            return None
        return value

    def finish(self) -> None:
        for key in sorted(set(self.table) - self.known):
            expected = ", ".join(sorted(self.known))
            self.problems.append(f"{self.name}.{key}: unknown key (expected one of: {expected})")


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

    def section(name: str) -> _Section:
        return _Section(table.get(name, {}), name, problems, base)

    gladia = _parse_gladia(section("gladia"), environ, path, problems, warnings)
    transcription = TranscriptionConfig(_parse_transcription(table.get("transcription", {}), problems))
    inbox = _parse_inbox(section("inbox"))
    output = _parse_output(section("output"), problems)
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
    media = _parse_media(section("media"))
    callback = _parse_callback(section("callback"))
    skip = parse_skip(table.get("skip", {}), problems)
    integrations = _parse_integrations(section("integrations"), warnings)
    budget_section = section("budget")
    budget = BudgetConfig(daily_audio_hours=budget_section.number("daily_audio_hours", 0.0, maximum=1e6),
                          monthly_audio_hours=budget_section.number("monthly_audio_hours", 0.0, maximum=1e6))
    budget_section.finish()
    metrics = _parse_metrics(section("metrics"))
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


def _parse_gladia(s: _Section, environ: Mapping[str, str], path: Path | None, problems: list[str],
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


def _parse_transcription(table: object, problems: list[str], *, combinations: bool = True) -> dict[str, Any]:
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
        problems.extend(request_schema.validate(value, fields[name], f"transcription.{name}"))
    if combinations:
        problems.extend(check_combinations(request))
    return request


def transcription_overrides(table: object, problems: list[str]) -> dict[str, Any]:
    """A per-folder [transcription] table -> the request fields it overrides (validated one by one)."""
    return _parse_transcription(table, problems, combinations=False)


def merge_request(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The request `base` with `overrides` laid over it key by key: a nested table (language_config,
    diarization_config...) is merged one level down, so `languages` alone keeps the base's code_switching."""
    merged = dict(base)
    for name, value in overrides.items():
        below = merged.get(name)
        merged[name] = {**below, **value} if isinstance(below, Mapping) and isinstance(value, Mapping) else value
    return merged


SectionT = TypeVar("SectionT")


def section_overrides(name: str, table: object, parser: Callable[[_Section], object], problems: list[str],
                      allowed: tuple[str, ...]) -> dict[str, Any]:
    """Read a per-folder table with the main config's own section `parser`; return only the fields the table
    sets ({field: value}), for `merge_section` over the main config's section. A key outside `allowed` is
    reported (unknown, or read from the main config only); every problem is appended to `problems`."""
    if not isinstance(table, dict):
        problems.append(f"{name}: expected a table ([{name}]), got {type(table).__name__}")
        return {}
    for key in sorted(set(table) - set(allowed)):
        problems.append(f"{name}.{key}: not a per-folder key (a folder's [{name}] may set: {', '.join(allowed)})")
    kept = {key: value for key, value in table.items() if key in allowed}
    parsed = parser(_Section(kept, name, problems, None))
    return {key: getattr(parsed, key) for key in kept}


def merge_section(base: SectionT, overrides: Mapping[str, Any]) -> SectionT:
    """`base` (a section dataclass) with `overrides` ({field: value}) laid over it."""
    return dataclasses.replace(base, **overrides)  # type: ignore[type-var]


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


def _parse_inbox(s: _Section) -> InboxConfig:
    config = InboxConfig(
        paths=s.paths("paths", InboxConfig.paths),
        recursive=s.boolean("recursive", True),
        settle_seconds=s.number("settle_seconds", 5.0),
        settle_timeout_seconds=s.number("settle_timeout_seconds", 86400.0, above=True),
        rescan_seconds=s.number("rescan_seconds", 600.0, above=True),
        observer=s.string("observer", "auto", ("auto", "native", "polling")),  # type: ignore[arg-type]
        polling_interval_seconds=s.number("polling_interval_seconds", 5.0, above=True),
        include=s.strings("include", ()),
        exclude=s.strings("exclude", ()),
    )
    s.finish()
    return config


# The [output] keys a folder's .transcribed.toml may set; the others name places outside the inboxes.
FOLDER_OUTPUT_KEYS = ("formats", "name", "language_fallback", "overwrite", "mode")


def parse_output(s: _Section) -> OutputConfig:
    """The [output] section parser (also used for per-folder tables, see `section_overrides`)."""
    return _parse_output(s, s.problems)


def _parse_output(s: _Section, problems: list[str]) -> OutputConfig:
    formats = s.strings("formats", OutputConfig.formats, nonempty=True)
    for name in formats:
        if name not in OUTPUT_FORMATS:
            problems.append(f"output.formats: unknown format {name!r} (expected some of: {', '.join(OUTPUT_FORMATS)})")
    name = s.string("name", OutputConfig.name)
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(name) if f is not None}
    except ValueError:
        fields = {"(unbalanced braces)"}
    if not {"stem", "format"} <= fields or fields - {"stem", "lang", "format"} or "/" in name:
        problems.append(f"output.name: expected a file name template with {{stem}} and {{format}} (and optionally "
                        f"{{lang}}), no '/', got {name!r}")
    config = OutputConfig(
        formats=tuple(dict.fromkeys(formats)),
        name=name,
        directory=s.path("directory", None),
        language_fallback=s.string("language_fallback", "und"),
        overwrite=s.boolean("overwrite", False),
        mode=s.mode("mode"),
        after=s.string("after", "keep", ("keep", "move")),  # type: ignore[arg-type]
        done_directory=s.path("done_directory", None),
    )
    if config.after == "move" and config.done_directory is None:
        problems.append('output.done_directory: required when output.after = "move"')
    s.finish()
    return config


def _parse_media(s: _Section) -> MediaConfig:
    config = MediaConfig(
        extract_audio=s.string("extract_audio", "auto", ("auto", "always", "never")),  # type: ignore[arg-type]
        extract_threshold_mb=s.number("extract_threshold_mb", 100.0),
        audio_stream=_audio_stream(s),
        max_duration_minutes=s.number("max_duration_minutes", 135.0, minimum=1.0, maximum=24 * 60.0),
        max_upload_mb=s.number("max_upload_mb", 1000.0, minimum=1.0),
        codec=s.string("codec", "opus", MEDIA_CODECS),
        bitrate_kbps=s.integer("bitrate_kbps", 32, minimum=6, maximum=256),
        ffmpeg=_tool(s, "ffmpeg"),
        ffprobe=_tool(s, "ffprobe"),
        temp_directory=s.path("temp_directory", None),
        probe_timeout_seconds=s.number("probe_timeout_seconds", 60.0, above=True),
    )
    s.finish()
    return config


def _audio_stream(s: _Section) -> int | str:
    """A stream number, a language code ("en", "fra", "pt-BR"), or "" for the file's default stream."""
    value = s._get("audio_stream")
    if value is _MISSING or value == "":
        return ""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10_000:
        return value
    if isinstance(value, str):
        parts = value.replace("_", "-").split("-")
        if 2 <= len(parts[0]) <= 3 and parts[0].isascii() and parts[0].isalpha() \
                and all(p and p.isascii() and p.isalnum() for p in parts[1:]):
            return value
    s._bad("audio_stream", 'a stream number (0, 1, ...), a language code such as "en" or "fra", or ""', value)
    return ""


def _tool(s: _Section, name: str) -> str:
    """A command looked up on PATH, or a path (relative ones taken from the config file's folder)."""
    value = s.string(name, name)
    if not value.strip():
        s._bad(name, "a command name or a path", value)
        return name
    return str(s._resolve(value)) if "/" in value else value


def _split_listen(text: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        ipaddress.IPv6Address(host)  # ValueError when it is not one
    elif ":" in host or not host or any(c.isspace() or c in "/[]@" for c in host):
        raise ValueError(f"not host:port: {text!r}")
    if not colon or not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise ValueError(f"not host:port: {text!r}")
    return host, int(port)


def _is_svix_secret(text: str) -> bool:
    try:
        return text.startswith("whsec_") and bool(base64.b64decode(text.removeprefix("whsec_"), validate=True))
    except (binascii.Error, ValueError):
        return False


def _parse_callback(s: _Section) -> CallbackConfig:
    # Setting public_url is what turns callbacks on; `enabled = false` keeps them off while keeping the URL.
    explicit = "enabled" in s.table
    enabled = s.boolean("enabled", False)
    listen = s.string("listen", CallbackConfig.listen)
    try:
        port_ok = _split_listen(listen)[1] > 0
    except ValueError:
        port_ok = False
    if not port_ok:
        s.problems.append(f"callback.listen: expected host:port (IPv6 as [::1]:8787, port 1-65535), got {listen!r}")
    public_url = s.string("public_url", "").rstrip("/")
    if public_url:
        try:
            parts = urlsplit(public_url)
            usable = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
        except ValueError:
            usable = False
        if not usable or parts.username or parts.password or parts.query or parts.fragment:
            shown = "a URL with credentials" if usable and (parts.username or parts.password) else repr(public_url)
            s.problems.append(f"callback.public_url: expected an http(s) URL without credentials, query or "
                              f"fragment, e.g. https://host.example/transcribed, got {shown}")
    elif enabled:
        s.problems.append("callback.public_url: required when callback.enabled = true (the address Gladia "
                          "calls, e.g. https://host.example/transcribed)")
    secret_text = s.optional_string("webhook_secret")
    if secret_text is not None and not _is_svix_secret(secret_text):
        # The value is a secret: never repeated in the message.
        s.problems.append('callback.webhook_secret: expected a Svix secret "whsec_<base64>" (as Gladia shows it)')
        secret_text = None
    if not explicit and public_url:
        enabled = True
    config = CallbackConfig(
        enabled=enabled,
        listen=listen,
        public_url=public_url,
        method=s.string("method", "POST", ("POST", "PUT")),  # type: ignore[arg-type]
        webhook_secret=Secret(secret_text) if secret_text else None,
        max_body_bytes=s.integer("max_body_bytes", CallbackConfig.max_body_bytes, minimum=64 * 1024,
                                 maximum=1024 * 1024 * 1024),
        safety_poll_seconds=s.number("safety_poll_seconds", 60.0, minimum=1.0),
    )
    s.finish()
    return config


def parse_skip(table: object, problems: list[str], *, where: str = "skip",
               base: SkipConfig = SkipConfig()) -> SkipConfig:
    """Given a [skip] table, return the SkipConfig it sets, keys it leaves out taken from `base` (so a
    per-folder file can override some keys of the main config); append a problem per bad value, each
    prefixed with `where` (e.g. "skip" or "/srv/tv/.transcribed.toml: skip")."""
    s = _Section(table, where, problems, None)
    languages = base.subtitle_languages
    value = s._get("subtitle_languages")
    if value is not _MISSING:
        codes = [canonical(v) if isinstance(v, str) else None for v in value] if isinstance(value, list) else [None]
        if None in codes:
            s._bad("subtitle_languages", 'a list of language codes such as "en", "eng" or "fra" (ISO 639) or '
                                         'English names such as "English"', value)
        else:
            languages = tuple(dict.fromkeys(code for code in codes if code is not None))
    s.finish()
    return SkipConfig(subtitle_languages=languages)


def _parse_integrations(s: _Section, warnings: list[str]) -> IntegrationsConfig:
    listen = s.string("listen", "")
    token = s.optional_string("token")
    if listen:
        try:
            host, port = _split_listen(listen)
            if port == 0:
                raise ValueError(listen)
        except ValueError:
            s.problems.append(f"integrations.listen: expected host:port (IPv6 as [::1]:9000, port 1-65535) or \"\" "
                              f"(off), got {listen!r}")
        else:
            if token is None and not _is_loopback(host):
                s.problems.append(f"integrations.token: required when integrations.listen is not a loopback "
                                  f"address ({listen!r}): every endpoint then lives under /<token>/")
    if token is not None and not all(c.isascii() and (c.isalnum() or c in "-_.~") for c in token):
        # The value is a secret: never repeated in the message.
        s.problems.append("integrations.token: expected letters, digits and - _ . ~ only (it is a URL path segment)")
        token = None
    if token is not None and len(token) < 16:
        warnings.append("integrations.token is short (under 16 characters): anyone who can guess it can make "
                        "transcribed pay for jobs; use e.g. `openssl rand -hex 16`")
    mappings: list[PathMapping] = []
    raw = s._get("path_map")
    if raw is not _MISSING:
        ok = isinstance(raw, list) and all(isinstance(m, dict) and set(m) == {"from", "to"} and all(
            isinstance(m[k], str) and m[k].startswith("/") for k in ("from", "to")) for m in raw)
        if not ok:
            s._bad("path_map", 'a list of { from = "/tv", to = "/srv/media/tv" } with absolute paths', raw)
        else:
            mappings = [PathMapping(m["from"].rstrip("/") or "/", m["to"].rstrip("/") or "/") for m in raw]
    config = IntegrationsConfig(
        listen=listen,
        token=Secret(token) if token else None,
        library_paths=tuple(s._resolve(t) for t in s.strings("library_paths", ())),
        path_map=tuple(sorted(mappings, key=lambda m: -len(m.source))),
        max_body_mb=s.number("max_body_mb", IntegrationsConfig.max_body_mb, above=True),
    )
    s.finish()
    return config


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse_metrics(s: _Section) -> MetricsConfig:
    listen = s.string("listen", "")
    if listen:
        try:
            port_ok = _split_listen(listen)[1] > 0
        except ValueError:
            port_ok = False
        if not port_ok:
            s.problems.append(f"metrics.listen: expected host:port (IPv6 as [::1]:9464, port 1-65535) or \"\" "
                              f"(off), got {listen!r}")
    s.finish()
    return MetricsConfig(listen=listen)


def to_toml_dict(config: Config) -> dict[str, Any]:
    """Return the effective config as a TOML-ready table, the API key masked."""
    def clean(value: Any) -> Any:
        if isinstance(value, Secret):
            return "********"
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, tuple):
            return [clean(v) for v in value]
        if isinstance(value, Mapping):
            return {k: clean(v) for k, v in value.items() if v is not None}
        return value

    out: dict[str, Any] = {}
    for name in ("gladia", "transcription", "inbox", "output", "ledger", "workers", "log", "hooks", "media",
                 "callback", "skip", "integrations", "budget", "metrics"):
        section = getattr(config, name)
        values = dict(section.request) if name == "transcription" else dataclasses.asdict(section)
        if name == "integrations":
            values["token"] = config.integrations.token
            values["path_map"] = [{"from": m.source, "to": m.target} for m in config.integrations.path_map]
        if name == "gladia":
            values["api_key"] = config.gladia.api_key
        if name == "output" and values.get("mode") is not None:
            values["mode"] = f"{values['mode']:04o}"
        out[name] = clean(values)
    return out
