"""The media-server integrations' HTTP endpoint (issue 14): Bazarr's Whisper provider, Sonarr/Radarr webhooks.

Routes, under /<token>/ when integrations.token is set (else under /):
    POST asr?task=&language=&output=&encode=   field audio_file -> the transcript in `output`'s form (200)
    POST detect-language?encode=               field audio_file -> {"detected_language", "language_code"}
    POST sonarr | radarr                       Webhook JSON: Download and Rename name files to transcribe
    POST enqueue                               {"paths": [...]} or {"path": "..."}
    GET  /                                     health: 200 "transcribed"

Before a byte of a body is read: the token (constant time; a wrong or missing one is 404, exactly like an
unknown path), the method, the query string (400) and Content-Length (411 without one, 413 over the limit).
Uploads go to a private file in the spool folder as they arrive (memory stays flat). The receiver reaches
the pipeline only through the two callables it is given (`Handlers`); it never logs the token or the URL.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog

from transcribed.config import IntegrationsConfig
from transcribed.receiver.confine import confine
from transcribed.receiver.contract import (
    Answer,
    AsrRequest,
    BadRequest,
    Received,
    asr_request,
    detect_request,
    map_path,
    route,
    webhook_paths,
)
from transcribed.receiver.listener import BoundedServer, Listener
from transcribed.receiver.multipart import BadBody, save_field

__all__ = ["Handlers", "IntegrationsServer"]

log = structlog.get_logger("transcribed.integrations")

HEADER_SECONDS = 30.0        # per read while the request line and headers arrive
IDLE_SECONDS = 120.0         # per read while a body arrives (a whole film takes a while; a stall does not)
WRITE_SECONDS = 120.0
WEBHOOK_MAX_BYTES = 1024 * 1024
MAX_CONNECTIONS = 32
GONE_CHECK = 0.0


@dataclass(frozen=True)
class Handlers:
    """What the composition root passes in. `answer(asked, received, gone)`: the answer to asr /
    detect-language, None when the client hung up (`gone()` tells). `submit(path, root)`: queue a confined
    file like an inbox file; None when queued, else why not (a one-line reason, answered with 404)."""

    answer: Callable[[AsrRequest, Received, Callable[[], bool]], Answer | None]
    submit: Callable[[Path, Path], str | None]


@dataclass(frozen=True)
class _Settings:
    handlers: Handlers
    token: str | None
    roots: tuple[Path, ...]
    config: IntegrationsConfig
    spool: Path

    @property
    def max_body(self) -> int:
        return int(self.config.max_body_mb * 1_000_000)


class _Handler(BaseHTTPRequestHandler):
    server: BoundedServer[_Settings]
    protocol_version = "HTTP/1.1"
    timeout = HEADER_SECONDS

    def log_message(self, format: str, *args: Any) -> None:
        return   # the request line holds the token: never written anywhere

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        self._answer(Answer(code, b"malformed request\n"), "malformed")

    def handle_expect_100(self) -> bool:
        return True   # "100 Continue" is sent once the request passed every check before its body

    def handle(self) -> None:
        self.close_connection = True
        self._body_read = False
        self._answered = False
        try:
            self.handle_one_request()
        except (TimeoutError, OSError) as exc:
            log.info("integration_rejected", reason=f"connection: {exc.__class__.__name__}")
        finally:
            if not self._body_read:
                self._linger()

    def do_GET(self) -> None:
        endpoint = self._endpoint()
        if endpoint is None:
            return
        if endpoint != "":
            self._answer(Answer(405, b"use POST\n"), "method")
            return
        self._body_read = True
        self._answer(Answer(200, b"transcribed: whisper-asr-webservice compatible endpoint\n"), "health")

    def do_POST(self) -> None:
        endpoint = self._endpoint()
        if endpoint is None:
            return
        if endpoint == "":
            self._answer(Answer(405, b"use GET\n"), "method")
            return
        settings = self.server.settings
        query = urlsplit(self.path).query
        if endpoint in ("asr", "detect-language"):
            try:
                asked = asr_request(query) if endpoint == "asr" else detect_request(query)
            except BadRequest as exc:
                self._answer(Answer(400, f"{exc}\n".encode()), "bad_query")
                return
            length = self._length(settings.max_body)
            if length is not None:
                self._transcribe(endpoint, asked, length)
            return
        length = self._length(WEBHOOK_MAX_BYTES, "a webhook's JSON body")
        if length is not None:
            self._webhook(endpoint, length)

    do_PUT = do_POST

    # ---------------------------------------------------------------------------------------- steps

    def _endpoint(self) -> str | None:
        try:
            target = urlsplit(self.path).path
        except ValueError:
            target = ""
        endpoint = route(target, self.server.settings.token)
        if endpoint is None:
            self._answer(Answer(404, b"not found\n"), "no_route")
        return endpoint

    def _length(self, limit: int, setting: str = "integrations.max_body_mb") -> int | None:
        values = self.headers.get_all("Content-Length") or []
        text = values[0].strip() if values else ""
        if self.headers.get("Transfer-Encoding") is not None or not values:
            self._answer(Answer(411, b"Content-Length required\n"), "no_length")
        elif len(set(values)) != 1 or not (text.isascii() and text.isdigit()) or len(text) > 15:
            self._answer(Answer(400, b"bad Content-Length\n"), "bad_length")
        elif int(text) > limit:
            self._answer(Answer(413, f"body over the limit of {limit} bytes ({setting})\n".encode()),
                         "too_large")
        else:
            if (self.headers.get("Expect") or "").lower() == "100-continue":
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                self.wfile.flush()
            return int(text)
        return None

    def _transcribe(self, endpoint: str, asked: AsrRequest, length: int) -> None:
        settings = self.server.settings
        self.connection.settimeout(IDLE_SECONDS)
        handle, name = tempfile.mkstemp(prefix=".received-", dir=settings.spool)
        path = Path(name)
        saved = None
        try:
            with os.fdopen(handle, "wb") as out:
                saved = save_field(self.rfile.read, length, self.headers.get("Content-Type"), "audio_file", out)
        except BadBody as exc:
            self._body_read = True
            self._answer(Answer(400, f"{exc}\n".encode()), "bad_body")
            return
        finally:
            if saved is None:   # refused, cut short or interrupted: nothing of it is kept
                path.unlink(missing_ok=True)
        self._body_read = True
        log.info("integration_request", endpoint=endpoint, task=asked.task, language=asked.language,
                 output=asked.output, encoded=asked.encoded, bytes=saved.size, key=f"sha256:{saved.sha256[:12]}")
        answer = settings.handlers.answer(asked, Received(path, saved.sha256, saved.size, saved.filename),
                                          self._gone)
        if answer is not None:
            self._answer(answer, "answered")

    def _webhook(self, endpoint: str, length: int) -> None:
        self.connection.settimeout(IDLE_SECONDS)
        body = self.rfile.read(length) if length else b""
        self._body_read = True
        if len(body) < length:
            return
        try:
            named = webhook_paths(endpoint, body)
        except BadRequest as exc:
            self._answer(Answer(400, f"{exc}\n".encode()), "bad_body")
            return
        settings = self.server.settings
        if not named.paths:
            log.info("integration_request", endpoint=endpoint, caller_event=named.event, paths=[], outcome="ignored")
            self._answer(_json(200, {"event": named.event, "queued": [], "refused": []}), "ignored")
            return
        queued: list[str] = []
        refused: list[dict[str, object]] = []
        for original in named.paths:
            mapped = map_path(original, settings.config.path_map)
            verdict = confine(mapped, settings.roots)
            status, reason = verdict.status, verdict.reason
            if verdict.path is not None and verdict.root is not None:
                problem = settings.handlers.submit(verdict.path, verdict.root)
                if problem is None:
                    queued.append(str(verdict.path))
                else:
                    status, reason = 404, problem
            log.info("integration_request", endpoint=endpoint, caller_event=named.event, path=mapped,
                     outcome="queued" if status == 200 else "refused", reason=None if status == 200 else reason)
            if status != 200:
                refused.append({"path": mapped, "status": status, "reason": reason})
        statuses = {item["status"] for item in refused}
        status = 200 if not refused else 403 if 403 in statuses else 404
        self._answer(_json(status, {"event": named.event, "queued": queued, "refused": refused}), "webhook")

    def _gone(self) -> bool:
        """True once the client closed its side (the answer then has nobody to go to)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], GONE_CHECK)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _answer(self, answer: Answer, reason: str) -> None:
        if self._answered:
            return
        self._answered = True
        if answer.status >= 400:
            log.info("integration_rejected", status=answer.status, reason=reason)
        phrase = HTTPStatus(answer.status).phrase
        head = (f"HTTP/1.1 {answer.status} {phrase}\r\nContent-Type: {answer.content_type}\r\n"
                f"Content-Length: {len(answer.body)}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n")
        try:
            self.connection.settimeout(WRITE_SECONDS)
            self.wfile.write(head.encode("ascii") + answer.body)
            self.wfile.flush()
        except OSError:
            log.info("integration_rejected", reason="connection lost while answering")

    def _linger(self) -> None:
        """Answered without reading the body: half-close, drop a little of what still comes (bounded), so
        the client reads our answer rather than a reset."""
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(1.0)
            drained = 0
            while drained < 1024 * 1024:
                chunk = self.connection.recv(65536)
                if not chunk:
                    return
                drained += len(chunk)


def _json(status: int, body: dict[str, object]) -> Answer:
    return Answer(status, json.dumps(body).encode(), "application/json")


class IntegrationsServer(Listener[_Settings]):
    """`start` binds `config.listen` and serves on background threads; `stop` ends them all (idempotent)."""

    def __init__(self, config: IntegrationsConfig, inbox_paths: Sequence[Path], spool: Path,
                 handlers: Handlers) -> None:
        host, port = config.address()
        token = config.token.reveal() if config.token is not None else None
        self._spool = spool
        super().__init__("integrations", host, port, _Handler,
                         _Settings(handlers, token, (*inbox_paths, *config.library_paths), config, spool),
                         max_connections=MAX_CONNECTIONS, error_event="integration_server_error")

    def start(self) -> None:
        """Make the spool folder, then bind and serve; raise OSError when the address cannot be bound,
        RuntimeError when already started."""
        self._spool.mkdir(mode=0o700, parents=True, exist_ok=True)
        super().start()
