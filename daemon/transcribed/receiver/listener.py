"""The listening half shared by the receiver's three HTTP servers (callbacks, integrations, metrics).

`BoundedServer` is a threading TCP server with a bounded number of connections: one over the limit is
answered 503 at once, written without blocking (a client that does not read cannot hold the accept loop),
and closed; the connections being served are tracked so `close_connections` can cut them short at stop.
Its handlers reach their server's own settings as `self.server.settings`. An error escaping a handler is
logged under the event name the server was given, never written to stderr.

`Listener` wraps one, and each server subclasses it: `start` binds (IPv6 when the host holds a ':') and
serves on the thread "<name>-server", `stop` stops accepting, cuts open connections and joins every thread
(idempotent), `address` is the bound (host, port).
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import structlog

__all__ = ["BoundedServer", "Listener"]

log = structlog.get_logger(__name__)

SettingsT = TypeVar("SettingsT")

POLL_SECONDS = 0.1   # how often serve_forever looks for a shutdown request: bounds how long `stop` waits
BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class BoundedServer(socketserver.ThreadingMixIn, socketserver.TCPServer, Generic[SettingsT]):
    """A TCP server with at most `max_connections` handler threads, which `close_connections` can cut short.
    `on_refused` is called (before the 503) for each connection refused for being over the limit."""

    daemon_threads = False
    block_on_close = True   # server_close joins every handler thread
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily,
                 handler: type[socketserver.BaseRequestHandler], settings: SettingsT, *, max_connections: int,
                 error_event: str, on_refused: Callable[[], None] | None = None, backlog: int = 64) -> None:
        self.address_family = family
        self.request_queue_size = backlog
        self.settings = settings
        self._error_event = error_event
        self._on_refused = on_refused
        self._slots = threading.BoundedSemaphore(max_connections)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            if self._on_refused is not None:
                self._on_refused()
            with contextlib.suppress(OSError):   # the client is gone or not reading: closing is all that is left
                request.setblocking(False)
                request.send(BUSY)
            self.shutdown_request(request)
            return
        with self._open_lock:
            self._open.add(request)
        try:
            super().process_request(request, client_address)
        except RuntimeError:   # no thread could be started
            self._done(request)
            self.shutdown_request(request)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._done(request)

    def _done(self, request: socket.socket) -> None:
        with self._open_lock:
            self._open.discard(request)
        self._slots.release()

    def close_connections(self) -> None:
        """Cut every open connection (its handler sees end of input and returns)."""
        with self._open_lock:
            for connection in self._open:
                with contextlib.suppress(OSError):   # already closed by its handler
                    connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.error(self._error_event, exc_info=True)


class Listener(Generic[SettingsT]):
    """One BoundedServer on `host:port`, served on the thread "<name>-server". Thread-safe. The receiver's
    servers subclass it, adding what they do around `start` and `stop`."""

    def __init__(self, name: str, host: str, port: int, handler: type[socketserver.BaseRequestHandler],
                 settings: SettingsT, *, max_connections: int, error_event: str,
                 on_refused: Callable[[], None] | None = None, backlog: int = 64) -> None:
        def bind(family: socket.AddressFamily) -> BoundedServer[SettingsT]:
            return BoundedServer((host, port), family, handler, settings, max_connections=max_connections,
                                 error_event=error_event, on_refused=on_refused, backlog=backlog)

        self._name = name
        self._host, self._port = host, port
        self._bind = bind
        self._lock = threading.Lock()
        self._server: BoundedServer[SettingsT] | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(listen={self._host!r}:{self._port})"

    def start(self) -> None:
        """Bind and serve; return once connections are accepted. Raise OSError when the address cannot be
        bound, RuntimeError when already started."""
        with self._lock:
            if self._server is not None:
                raise RuntimeError(f"the {self._name} server is already started")
            family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
            server = self._bind(family)
            self._server = server
            self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL_SECONDS},
                                            name=f"{self._name}-server")
            self._thread.start()

    def stop(self) -> bool:
        """Stop accepting, cut open connections, join every thread. Return False when there was nothing to
        stop (never started, or already stopped): safe to call more than once."""
        with self._lock:
            server, self._server = self._server, None
            thread, self._thread = self._thread, None
            if server is None:
                return False
            server.shutdown()
            server.close_connections()
            server.server_close()
            if thread is not None:
                thread.join()
        return True

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); RuntimeError before `start`."""
        server = self._server
        if server is None:
            raise RuntimeError(f"the {self._name} server is not started")
        host, port = server.server_address[:2]
        return str(host), int(port)
