"""HTTP transport of the Gladia emulator: a threading HTTP/1.1 server with keep-alive, the auth check,
the fault switches applied around each route, and a stop that closes every connection and joins its thread.
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, BinaryIO, cast
from urllib.parse import parse_qsl, urlsplit

from transcribed.emulator.faults import Counters, FaultBoard, RequestLog
from transcribed.emulator.media import CHUNK_BYTES
from transcribed.emulator.multipart import BodyTooLarge, MalformedBody, RequestBody
from transcribed.emulator.routes import (
    MAX_JSON_BYTES,
    Request,
    Response,
    Routes,
    error_response,
    json_response,
    match,
)

HANDLER_TIMEOUT_SECONDS = 120.0
LINGER_SECONDS = 2.0
DISCARD_BYTES = 1024 * 1024
CONTROL_PREFIX = "/_emulator/"
CONTROL_ROUTE = "control"


@dataclass
class Control:
    """The `/_emulator/` endpoints' view of the emulator (no key needed)."""

    state: Callable[[], dict[str, Any]]
    change_faults: Callable[[dict[str, object]], dict[str, Any]]
    faults: Callable[[], dict[str, Any]]
    reset: Callable[[], None]
    set_keys: Callable[[dict[str, object]], dict[str, Any]]   # {"api_keys": [...] or null}
    requests: Callable[[], list[dict[str, Any]]] = list


@dataclass
class Wiring:
    """Everything a connection handler needs, shared by all connections."""

    routes: Routes
    faults: FaultBoard
    counters: Counters
    control: Control
    accepts_key: Callable[[str | None], bool]
    stop: threading.Event
    events: Callable[[str, dict[str, Any]], None] | None
    requests: RequestLog = field(default_factory=RequestLog)


class EmulatorServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its connections, so `close_connections` can end them on stop."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], wiring: Wiring) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.wiring = wiring
        self._lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._dropped: set[socket.socket] = set()
        super().__init__(address, EmulatorHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the FQDN of the address, which can stall on a broken resolver.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(target=self._serve_connection, args=(request, client_address),
                                  name="gladia-emulator-connection", daemon=True)
        with self._lock:
            self._connections[request] = thread
        thread.start()

    def _serve_connection(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except (OSError, ValueError, MalformedBody):
            pass  # a client that vanishes mid-request is normal; the next one is served as usual
        finally:
            self.shutdown_request(request)
            with self._lock:
                self._connections.pop(request, None)
                self._dropped.discard(request)

    def mark_dropped(self, connection: socket.socket) -> None:
        """Make the end of this connection an abortive reset instead of an orderly close."""
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with self._lock:
            self._dropped.add(connection)

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            dropped = request in self._dropped
        if dropped:
            request.close()
        else:
            super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.wiring.counters.add("handler_errors")

    def close_connections(self) -> list[threading.Thread]:
        """Shut every open connection down (unblocking its thread) and return their threads."""
        with self._lock:
            connections = list(self._connections.items())
        for connection, _ in connections:
            with contextlib.suppress(OSError):  # already closed by its own thread
                connection.shutdown(socket.SHUT_RDWR)
        return [thread for _, thread in connections]


class EmulatorHandler(BaseHTTPRequestHandler):
    """One connection: parses requests and answers them (keep-alive), applying the fault switches."""

    protocol_version = "HTTP/1.1"
    server_version = "gladia-emulator"
    sys_version = ""
    timeout = HANDLER_TIMEOUT_SECONDS
    server: EmulatorServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's algorithm meets the client's
        # delayed ACK and every keep-alive answer waits ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def parse_request(self) -> bool:
        self._expect_continue = False
        self._continue_sent = False
        return super().parse_request()

    def handle_expect_100(self) -> bool:
        # 100 Continue is sent only when the body is first read, so an early refusal (401, 413, 429)
        # reaches an Expect-ing client before it sends a large body.
        self._expect_continue = True
        return True

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the emulator reports through counters and the optional events callback."""

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def _send_continue(self) -> None:
        if self._expect_continue and not self._continue_sent:
            self._continue_sent = True
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _handle(self) -> None:
        wiring = self.server.wiring
        started = time.monotonic()
        received_at = time.time()
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        found = match(self.command, path)
        route = found[0].key if found else "unknown"
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        try:
            length = None if chunked else int(self.headers.get("Content-Length") or 0)
            if length is not None and length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            self._send(error_response(400, path, "Invalid Content-Length"), route, None)
            return
        limit = wiring.routes.body_limit(found[0]) if found else MAX_JSON_BYTES
        body = RequestBody(cast(BinaryIO, self.rfile), length=length, chunked=chunked, limit=limit,
                           before_first_read=self._send_continue)
        request = Request(self.command, path, parse_qsl(parts.query, keep_blank_values=True), self.headers,
                          body, found[1] if found else {})
        if path.startswith(CONTROL_PREFIX):
            self._send(self._control(request), CONTROL_ROUTE, body)
            return
        wiring.counters.add(route)
        response = self._api(request, found, route, length, limit)
        delay = wiring.faults.delay(route)
        if delay > 0 and wiring.stop.wait(delay):
            response = None  # stopping: the stalled request is cut off, not answered
        # Logged before the answer goes out: once a client holds an answer, the log already shows it.
        wiring.requests.add({"received_at": received_at, "answered_at": time.time(), "method": self.command,
                             "route": route, "job_id": found[1].get("id") if found else None,
                             "status": response.status if response else "dropped"})
        if response is None:
            wiring.counters.add(f"{route} dropped")
            self.close_connection = True
            self.server.mark_dropped(self.connection)
        else:
            if response.content_type and "json" in response.content_type and wiring.faults.truncate(route):
                response.body = response.body[: max(1, len(response.body) // 2)]
                wiring.counters.add(f"{route} truncated")
            self._send(response, route, body)
        if wiring.events is not None:
            wiring.events("emulator_request", {"method": self.command, "route": route,
                                               "status": response.status if response else "dropped",
                                               "duration_ms": round((time.monotonic() - started) * 1000, 1)})

    def _api(self, request: Request, found: Any, route: str, length: int | None, limit: int) -> Response | None:
        """Answer an API request, or return None to reset the connection."""
        wiring = self.server.wiring
        down, down_status = wiring.faults.down()
        if down:
            return None if down_status is None else error_response(down_status, request.path)
        if found is None:
            return error_response(404, request.path, f"Cannot {request.method} {request.path}")
        if not wiring.accepts_key(self.headers.get("x-gladia-key")):
            return error_response(401, request.path)
        if length is not None and length > limit:
            return error_response(413, request.path)
        limited = wiring.faults.rate_limited(route)
        if limited is not None:
            seconds, as_date = limited
            retry_after = formatdate(time.time() + seconds, usegmt=True) if as_date else str(seconds)
            return error_response(429, request.path, headers=[("Retry-After", retry_after)])
        failure = wiring.faults.server_error(route)
        if failure is not None and not failure[1]:
            return error_response(failure[0], request.path)
        response = wiring.routes.call(found[0], request)
        if failure is not None:
            response = error_response(failure[0], request.path)
        if wiring.faults.drop(route):
            return None
        return response

    def _control(self, request: Request) -> Response:
        control = self.server.wiring.control
        key = f"{request.method} {request.path}"
        try:
            raw = b"".join(iter(request.body.read, b""))
            if key == "GET /_emulator/state":
                return json_response(200, control.state())
            if key == "GET /_emulator/requests":
                return json_response(200, {"requests": control.requests()})
            if key == "GET /_emulator/faults":
                return json_response(200, control.faults())
            if key == "POST /_emulator/faults":
                changes = json.loads(raw or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError("the body must be a JSON object of switch names and values")
                return json_response(200, control.change_faults(changes))
            if key == "POST /_emulator/keys":
                changes = json.loads(raw or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError('the body must be a JSON object: {"api_keys": [...]} or {"api_keys": null}')
                return json_response(200, control.set_keys(changes))
            if key == "POST /_emulator/reset":
                control.reset()
                return json_response(200, {"counters": {}})
        except (ValueError, TypeError, MalformedBody) as exc:
            return error_response(400, request.path, str(exc))
        except BodyTooLarge:
            return error_response(413, request.path)
        return error_response(404, request.path, f"Cannot {request.method} {request.path}")

    def _send(self, response: Response, route: str, body: RequestBody | None) -> None:
        """Write the response. A request body left unread is drained when small; otherwise the
        connection is closed after a lingering drain, so the client still reads this answer."""
        linger = False
        if body is not None and not body.finished:
            if self._expect_continue and not self._continue_sent:
                self.close_connection = True  # the client has not sent the body and will not now
            elif not body.discard(DISCARD_BYTES):
                self.close_connection = linger = True
        if route != CONTROL_ROUTE:  # the controls observe the counters; they do not move them
            self.server.wiring.counters.add(f"{route} {response.status}")
        try:
            self.send_response(response.status)
            for name, value in response.headers:
                self.send_header(name, value)
            if response.content_type:
                self.send_header("Content-Type", response.content_type)
            size = response.file.path.stat().st_size if response.file else len(response.body)
            self.send_header("Content-Length", str(size))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if response.file is not None:
                self._stream_file(response)
            else:
                self.wfile.write(response.body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True
            return
        if linger:
            self._linger()

    def _stream_file(self, response: Response) -> None:
        assert response.file is not None  # narrowed by the caller
        with open(response.file.path, "rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                self.wfile.write(chunk)

    def _linger(self) -> None:
        # Closing with unread request bytes makes the kernel send a reset, which can destroy the answer
        # before the client reads it; so stop writing, then read and drop for a short while first.
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(0.2)
        except OSError:
            return
        deadline = time.monotonic() + LINGER_SECONDS
        while time.monotonic() < deadline and not self.server.wiring.stop.is_set():
            try:
                if not self.connection.recv(CHUNK_BYTES):
                    return
            except TimeoutError:
                continue
            except OSError:
                return
