"""Configuration: TOML -> frozen dataclasses.

Unknown keys and bad values are errors, all reported at once, each with its dotted path and what was
expected (ConfigError.problems). The file is the public contract documented in config.example.toml.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ObserverMode = Literal["auto", "native", "polling"]
AfterMode = Literal["keep", "move"]
LogFormat = Literal["auto", "json", "console"]


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
    rescan_seconds: float = 600.0          # periodic stat-only rescan (with jitter)
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
class Config:
    gladia: GladiaConfig = field(default_factory=GladiaConfig)
    transcription: TranscriptionConfig = field(default_factory=TranscriptionConfig)
    inbox: InboxConfig = field(default_factory=InboxConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    workers: WorkersConfig = field(default_factory=WorkersConfig)
    log: LogConfig = field(default_factory=LogConfig)
    hooks: HooksConfig = field(default_factory=HooksConfig)
    source: Path | None = None             # the file it came from, if any
