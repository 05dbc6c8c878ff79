"""Prometheus metrics: counters kept in memory, gauges read at scrape time, and GET /metrics.

The text exposition format (version 0.0.4) is written by hand: a few counters and gauges whose values are
mostly read from the ledger and the pool at scrape time need no client library, and the daemon keeps its
dependencies few. `Metrics` holds the in-process counters (API requests by route and status class, uploads,
retries) and the collectors the composition root registers (files by state, jobs in flight, budget...);
counters that users expect to survive restarts (jobs created, audio seconds) are collectors reading the
ledger. `MetricsServer` serves them: one GET per connection, a whole-request deadline, a bounded number of
connections, nothing else answered (404/405), nothing a client sends can raise out of a handler.
"""

from __future__ import annotations

import contextlib
import math
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

import structlog

from transcribed.receiver.listener import BoundedServer, Listener

log = structlog.get_logger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUEST_SECONDS = 5.0
MAX_CONNECTIONS = 16

# Every family the daemon exposes: name -> (type, help). A family with no samples yet still shows its
# HELP and TYPE lines, so dashboards and alerts find every name from the first scrape.
FAMILIES: dict[str, tuple[str, str]] = {
    "transcribed_jobs_created_total": ("counter", "Jobs created at Gladia (read from the ledger: survives restarts)."),
    "transcribed_audio_seconds_total": ("counter", "Audio seconds of the jobs created at Gladia (from the ledger; "
                                                   "corrected to what each job reported)."),
    "transcribed_api_requests_total": ("counter", "Requests to the Gladia API by route and status class (2xx, 4xx, "
                                                  "5xx; error: no answer)."),
    "transcribed_uploads_total": ("counter", "Files uploaded to Gladia by this process."),
    "transcribed_upload_bytes_total": ("counter", "Bytes uploaded to Gladia by this process."),
    "transcribed_retries_total": ("counter", "Files scheduled for another try after a passing error."),
    "transcribed_files": ("gauge", "Contents in the ledger by state (waiting: held for the audio budget)."),
    "transcribed_jobs_in_flight": ("gauge", "Files a worker is carrying now."),
    "transcribed_queue_depth": ("gauge", "Files waiting for a worker."),
    "transcribed_budget_used_seconds": ("gauge", "Audio seconds counted against the budget in the current "
                                                 "period (period: day, month)."),
    "transcribed_budget_left_seconds": ("gauge", "Audio seconds the budget leaves in the current period "
                                                 "(+Inf: no limit)."),
    "transcribed_paused": ("gauge", "1 while new work is held back, by reason (key_refused, outage, budget)."),
}

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Sample:
    name: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)


Collector = Callable[[], Iterable[Sample]]


def route_name(method: str, path: str) -> str:
    """A Gladia request's route as a label: upload, create, list, get, delete, or other."""
    parts = [part for part in path.split("/") if part]
    if parts[:2] == ["v2", "upload"] and len(parts) == 2:
        return "upload"
    if parts[:2] in (["v2", "pre-recorded"], ["v2", "transcription"]):
        if len(parts) == 2:
            return {"POST": "create", "GET": "list"}.get(method, "other")
        if len(parts) == 3:
            return {"GET": "get", "DELETE": "delete"}.get(method, "other")
    return "other"


def status_class(status: int | None) -> str:
    return "error" if status is None else f"{status // 100}xx"


class Metrics:
    """The registry. Thread-safe: workers add, the server's threads scrape."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, Labels], float] = {}
        self._collectors: list[Collector] = []
        for name in ("transcribed_uploads_total", "transcribed_upload_bytes_total", "transcribed_retries_total"):
            self._counts[(name, ())] = 0.0

    def add(self, name: str, amount: float = 1.0, **labels: str) -> None:
        """Add `amount` to the counter `name` with these labels."""
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._counts[key] = self._counts.get(key, 0.0) + amount

    def observe_api(self, method: str, path: str, status: int | None) -> None:
        """The Gladia client's observer: one call per answer seen (status None: no answer)."""
        self.add("transcribed_api_requests_total", route=route_name(method, path), status_class=status_class(status))

    def register(self, collector: Collector) -> None:
        """Add a source of samples asked at every scrape (gauges, counters read from the ledger)."""
        with self._lock:
            self._collectors.append(collector)

    def samples(self) -> list[Sample]:
        """Every sample now: the counters, then what each collector yields (a failing collector is logged
        and skipped, so one broken source never hides the others)."""
        with self._lock:
            found = [Sample(name, value, dict(labels)) for (name, labels), value in self._counts.items()]
            collectors = list(self._collectors)
        for collector in collectors:
            try:
                found.extend(collector())
            except Exception:   # a scrape must answer whatever one source does
                log.warning("metrics_collector_failed", exc_info=True)
        return found

    def exposition(self) -> str:
        """The text exposition of every family."""
        return render(self.samples())


def render(samples: Iterable[Sample]) -> str:
    """Prometheus text format 0.0.4: families in FAMILIES order (unknown names after), HELP and TYPE first."""
    by_name: dict[str, list[Sample]] = {name: [] for name in FAMILIES}
    for sample in samples:
        by_name.setdefault(sample.name, []).append(sample)
    lines: list[str] = []
    for name, items in by_name.items():
        kind, help_text = FAMILIES.get(name, ("untyped", ""))
        lines.append(f"# HELP {name} {_escape_help(help_text)}")
        lines.append(f"# TYPE {name} {kind}")
        for sample in sorted(items, key=lambda s: sorted(s.labels.items())):
            labels = ",".join(f'{key}="{_escape_label(value)}"' for key, value in sorted(sample.labels.items()))
            lines.append(f"{name}{{{labels}}} {_number(sample.value)}" if labels else f"{name} {_number(sample.value)}")
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(float(value))


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


_PATH = re.compile(r"/metrics/?")


class _DeadlineLines:
    """The request's lines, all read by one deadline (a client trickling its headers is cut off)."""

    def __init__(self, raw: Any, connection: socket.socket, deadline: float) -> None:
        self._raw = raw
        self._connection = connection
        self._deadline = deadline

    def readline(self, limit: int = -1) -> bytes:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request deadline passed")
        self._connection.settimeout(left)
        return bytes(self._raw.readline(limit))

    def close(self) -> None:
        self._raw.close()


@dataclass(frozen=True)
class _Settings:
    metrics: Metrics
    request_seconds: float


class _Handler(BaseHTTPRequestHandler):
    server: BoundedServer[_Settings]
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self._deadline = time.monotonic() + self.server.settings.request_seconds
        self.rfile = _DeadlineLines(self.rfile, self.connection, self._deadline)  # type: ignore[assignment]

    def handle(self) -> None:
        self.close_connection = True
        try:
            self.raw_requestline = self.rfile.readline(8193)
            if not self.raw_requestline or len(self.raw_requestline) > 8192:
                return
            if not self.parse_request():
                return
            path = self.path.split("?", 1)[0]
            if not _PATH.fullmatch(path):
                self._answer(HTTPStatus.NOT_FOUND, b"")
            elif self.command not in ("GET", "HEAD"):
                self._answer(HTTPStatus.METHOD_NOT_ALLOWED, b"", allow="GET, HEAD")
            else:
                body = self.server.settings.metrics.exposition().encode("utf-8")
                self._answer(HTTPStatus.OK, body, head=self.command == "HEAD")
        except (TimeoutError, OSError):
            return

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        self._answer(HTTPStatus(code), b"")

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _answer(self, status: HTTPStatus, body: bytes, *, allow: str | None = None, head: bool = False) -> None:
        lines = [f"HTTP/1.1 {int(status)} {status.phrase}", f"Content-Length: {len(body)}", "Connection: close",
                 "Cache-Control: no-store"]
        if status is HTTPStatus.OK:
            lines.append(f"Content-Type: {CONTENT_TYPE}")
        if allow is not None:
            lines.append(f"Allow: {allow}")
        payload = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + (b"" if head else body)
        with contextlib.suppress(OSError):
            self.connection.settimeout(REQUEST_SECONDS)
            self.connection.sendall(payload)


class MetricsServer(Listener[_Settings]):
    """GET /metrics on `listen` ("host:port", IPv6 as "[::1]:9464"): `start` binds, `stop` ends every thread."""

    def __init__(self, metrics: Metrics, host: str, port: int, *, request_seconds: float = REQUEST_SECONDS) -> None:
        super().__init__("metrics", host, port, _Handler, _Settings(metrics, request_seconds),
                         max_connections=MAX_CONNECTIONS, error_event="metrics_server_error")
