"""The callback receiver: a small stdlib HTTP server turning Gladia's callbacks and webhooks into hub notices.

Routes (also under public_url's path, for reverse proxies that keep the prefix):
    POST|PUT /callback/<token>  per-job callback; the token must be one the hub handed out and match the job
                                its body names (constant-time); accepted -> 200, else 404 with no detail
    POST     /webhook           account webhook {event, payload: {id}}; Svix-verified when a secret is set
                                (else 401); ids no job awaits are acknowledged (200) and ignored

It is built to face the internet: one request per connection, a whole-request deadline (headers and body,
so a slow-loris client is cut off however it trickles), a bounded number of connections (extra ones get 503
at once), a body limit checked against Content-Length before any of the body is read (413), tokens checked
before the body is read. It only records notices in the hub; it never talks to Gladia, and nothing a client
sends can raise out of a handler. Tokens, paths and the webhook secret are never logged.
"""

from __future__ import annotations

import io
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import structlog

from transcribed.config import CallbackConfig
from transcribed.receiver.listener import BoundedServer, Listener
from transcribed.receiver.verify import (
    BodyError,
    Notice,
    Verdict,
    callback_notice,
    svix_key,
    svix_problem,
    webhook_notice,
)

if TYPE_CHECKING:
    from transcribed.receiver.hub import CallbackHub

log = structlog.get_logger(__name__)

REQUEST_SECONDS = 10.0          # to send the request line, headers and body, all together
WRITE_SECONDS = 5.0             # to take our (tiny) answer
MAX_CONNECTIONS = 64
WEBHOOK_MAX_BYTES = 64 * 1024   # an account webhook is {event, payload: {id}}: tiny
LINGER_SECONDS = 1.0            # after answering without reading a body, drain a little so the client can
LINGER_BYTES = 1024 * 1024      # read the answer instead of a connection reset
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")


@dataclass(frozen=True)
class _Settings:
    hub: CallbackHub
    prefixes: tuple[str, ...]
    max_body_bytes: int
    webhook_key: bytes | None
    wall_clock: Callable[[], float]
    request_seconds: float


class _DeadlineReader(io.RawIOBase):
    """Socket reads that all end by one deadline: each recv waits at most the time left."""

    def __init__(self, connection: socket.socket, deadline: float) -> None:
        super().__init__()
        self._connection = connection
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request deadline passed")
        self._connection.settimeout(left)
        return self._connection.recv_into(buffer)


class _Writer(io.BufferedIOBase):
    def __init__(self, connection: socket.socket) -> None:
        super().__init__()
        self._connection = connection

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._connection.settimeout(WRITE_SECONDS)
        self._connection.sendall(data)
        return len(data)


class _Handler(BaseHTTPRequestHandler):
    """One request per connection; answers carry no body and no detail."""

    server: BoundedServer[_Settings]
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        self.connection = self.request
        settings = self.server.settings
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection,
                                                       time.monotonic() + settings.request_seconds))
        self.wfile = _Writer(self.connection)
        self._body_read = False
        self._answered = False
        self._kind = "unknown"

    def finish(self) -> None:
        try:
            if not self._body_read:
                self._linger()
        finally:
            self.rfile.close()

    def handle(self) -> None:
        self.close_connection = True
        try:
            self._handle_one()
        except TimeoutError:
            self._reject(HTTPStatus.REQUEST_TIMEOUT, "timeout")
        except OSError:
            log.debug("callback_rejected", kind=self._kind, reason="connection_lost", client=self._client())

    # BaseHTTPRequestHandler writes to stderr with the request line, which holds the token: never.
    def log_message(self, format: str, *args: Any) -> None:
        return

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Called by parse_request for malformed request lines and headers."""
        self._reject(HTTPStatus(code), "malformed_request")

    def handle_expect_100(self) -> bool:
        return True  # "100 Continue" is sent only once the request passed every check before the body

    def _handle_one(self) -> None:
        self.raw_requestline = self.rfile.readline(65537)
        if not self.raw_requestline:
            self._body_read = True  # nothing was sent: nothing to drain
            return
        if len(self.raw_requestline) > 65536:
            self._reject(HTTPStatus.REQUEST_URI_TOO_LONG, "malformed_request")
            return
        if not self.parse_request():
            return
        self.close_connection = True
        try:
            target = urlsplit(self.path).path
        except ValueError:
            target = ""
        kind, token = self._route(target)
        self._kind = kind
        if kind == "unknown":
            self._reject(HTTPStatus.NOT_FOUND, "no_route")
            return
        allowed = ("POST", "PUT") if kind == "callback" else ("POST",)
        if self.command not in allowed:
            self._reject(HTTPStatus.METHOD_NOT_ALLOWED, "method", allow=", ".join(allowed))
            return
        settings = self.server.settings
        limit = settings.max_body_bytes if kind == "callback" else min(settings.max_body_bytes, WEBHOOK_MAX_BYTES)
        length = self._content_length(limit)
        if length is None:
            return
        if kind == "callback":
            self._callback(token, length)
        else:
            self._webhook(length)

    def _route(self, target: str) -> tuple[str, str]:
        for prefix in self.server.settings.prefixes:
            if target == f"{prefix}/webhook":
                return "webhook", ""
            start = f"{prefix}/callback/"
            if target.startswith(start):
                token = target[len(start):]
                return ("callback", token) if _TOKEN.fullmatch(token) else ("unknown", "")
        return "unknown", ""

    def _content_length(self, limit: int) -> int | None:
        """Return the declared body length, or answer (411, 400, 413) and return None."""
        if self.headers.get("Transfer-Encoding") is not None:
            self._reject(HTTPStatus.LENGTH_REQUIRED, "no_length")
            return None
        values = self.headers.get_all("Content-Length") or []
        if not values:
            self._reject(HTTPStatus.LENGTH_REQUIRED, "no_length")
            return None
        text = values[0].strip()
        if len(set(values)) != 1 or not (text.isascii() and text.isdigit()) or len(text) > 18:
            self._reject(HTTPStatus.BAD_REQUEST, "bad_length")
            return None
        if int(text) > limit:
            self._reject(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "too_large")
            return None
        return int(text)

    def _read_body(self, length: int) -> bytes | None:
        if (self.headers.get("Expect") or "").lower() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            self._body_read = True  # the client closed its side: nothing left to drain
            self._reject(HTTPStatus.BAD_REQUEST, "truncated")
            return None
        self._body_read = True
        return body

    def _callback(self, token: str, length: int) -> None:
        hub = self.server.settings.hub
        if not hub.knows_token(token):
            self._reject(HTTPStatus.NOT_FOUND, "unknown_token")
            return
        body = self._read_body(length)
        if body is None:
            return
        notice = self._notice(callback_notice, body)
        if notice is None:
            return
        verdict = hub.receive_callback(token, notice.job_id, finished=notice.finished)
        if verdict is not Verdict.ACCEPTED:
            self._reject(HTTPStatus.NOT_FOUND, verdict.value)
            return
        log.info("callback_received", kind="callback", job_id=notice.job_id, gladia_event=notice.event,
                 finished=notice.finished)
        self._answer(HTTPStatus.OK)

    def _webhook(self, length: int) -> None:
        settings = self.server.settings
        body = self._read_body(length)
        if body is None:
            return
        if settings.webhook_key is not None:
            problem = svix_problem(settings.webhook_key, self.headers.get("svix-id"),
                                   self.headers.get("svix-timestamp"), self.headers.get("svix-signature"),
                                   body, settings.wall_clock())
            if problem is not None:
                self._reject(HTTPStatus.UNAUTHORIZED, problem)
                return
        notice = self._notice(webhook_notice, body)
        if notice is None:
            return
        awaited = notice.job_id is not None and settings.hub.receive_webhook(notice.job_id, finished=notice.finished)
        (log.info if awaited else log.debug)("callback_received", kind="webhook", job_id=notice.job_id,
                                             gladia_event=notice.event, finished=notice.finished, awaited=awaited)
        self._answer(HTTPStatus.OK)

    def _notice(self, parse: Callable[[bytes], Notice], body: bytes) -> Notice | None:
        try:
            return parse(body)
        except BodyError as error:
            self._reject(HTTPStatus.BAD_REQUEST, error.reason)
            return None

    def _reject(self, status: HTTPStatus, reason: str, *, allow: str | None = None) -> None:
        log.info("callback_rejected", kind=self._kind, reason=reason, status=int(status), client=self._client())
        self._answer(status, allow=allow)

    def _answer(self, status: HTTPStatus, *, allow: str | None = None) -> None:
        if self._answered:
            return
        self._answered = True
        lines = [f"HTTP/1.1 {int(status)} {status.phrase}", "Content-Length: 0", "Connection: close",
                 "Cache-Control: no-store"]
        if allow is not None:
            lines.append(f"Allow: {allow}")
        try:
            self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
        except OSError:
            log.debug("callback_rejected", kind=self._kind, reason="connection_lost", client=self._client())

    def _linger(self) -> None:
        """Half-close, then read and drop what the client still sends (bounded), so it can read our
        answer rather than a reset."""
        deadline = time.monotonic() + LINGER_SECONDS
        drained = 0
        try:
            self.connection.shutdown(socket.SHUT_WR)
            while drained < LINGER_BYTES and (left := deadline - time.monotonic()) > 0:
                self.connection.settimeout(left)
                chunk = self.connection.recv(65536)
                if not chunk:
                    return
                drained += len(chunk)
        except OSError:
            return

    def _client(self) -> str:
        address = self.client_address
        return str(address[0]) if isinstance(address, tuple) and address else "?"


def _refused() -> None:
    log.info("callback_rejected", kind="unknown", reason="too_many_connections", status=503)


class CallbackServer(Listener[_Settings]):
    """The receiver for one hub: `start` binds and serves on background threads, `stop` ends them all."""

    def __init__(self, hub: CallbackHub, config: CallbackConfig, *, wall_clock: Callable[[], float] = time.time,
                 request_seconds: float = REQUEST_SECONDS, max_connections: int = MAX_CONNECTIONS) -> None:
        """Raise ValueError when `config.listen` is not host:port or the webhook secret is not "whsec_..."."""
        host, port = config.address()
        key = svix_key(config.webhook_secret.reveal()) if config.webhook_secret is not None else None
        public_path = urlsplit(config.public_url).path.rstrip("/")
        prefixes = ("", public_path) if public_path else ("",)
        super().__init__("callback", host, port, _Handler,
                         _Settings(hub, prefixes, config.max_body_bytes, key, wall_clock, request_seconds),
                         max_connections=max_connections, error_event="callback_server_error",
                         on_refused=_refused, backlog=128)

    def start(self) -> None:
        """Bind and serve; return once connections are accepted. Raise OSError when the address cannot be
        bound, RuntimeError when already started."""
        super().start()
        host, port = self.address
        log.info("callback_server_started", host=host, port=port)

    def stop(self) -> bool:
        """Stop accepting, cut open connections, join every thread. Safe to call more than once."""
        stopped = super().stop()
        if stopped:
            log.info("callback_server_stopped")
        return stopped
