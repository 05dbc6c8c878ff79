"""The configuration's data: frozen dataclasses, one per TOML section, and the constants they share.

`Config` holds one of each section; its defaults are the documented ones (config.example.toml). No parsing
here, only the values, what a `listen` address means (`split_listen`), and how the effective config prints
back as TOML (`to_toml_dict`, secrets masked).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

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
        return split_listen(self.listen)


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
        return split_listen(self.listen)


@dataclass(frozen=True)
class BudgetConfig:
    daily_audio_hours: float = 0.0         # 0: no limit. Audio hours sent to Gladia per local day
    monthly_audio_hours: float = 0.0       # 0: no limit. Per calendar month (local time)


@dataclass(frozen=True)
class MetricsConfig:
    listen: str = ""                       # "HOST:PORT": Prometheus text format at GET /metrics; empty: off

    def address(self) -> tuple[str, int]:
        """Return `listen` as (host, port); raise ValueError when it is not host:port or [IPv6]:port."""
        return split_listen(self.listen)


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


DEFAULT_PATH = Path("/etc/transcribed/config.toml")
EX_CONFIG = 78
OUTPUT_FORMATS = ("txt", "srt", "vtt", "json", "md")
MEDIA_CODECS = ("opus", "aac", "mp3", "flac", "wav")
CREDENTIAL_NAME = "gladia-api-key"
# Request fields the daemon sets itself, per job; never from [transcription].
DAEMON_OWNED_FIELDS = ("audio_url", "callback", "callback_config", "callback_url", "custom_metadata")


def split_listen(text: str) -> tuple[str, int]:
    """Given "host:port" or "[IPv6]:port", return (host, port); raise ValueError when it is neither."""
    host, colon, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        ipaddress.IPv6Address(host)  # ValueError when it is not one
    elif ":" in host or not host or any(c.isspace() or c in "/[]@" for c in host):
        raise ValueError(f"not host:port: {text!r}")
    if not colon or not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise ValueError(f"not host:port: {text!r}")
    return host, int(port)


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
