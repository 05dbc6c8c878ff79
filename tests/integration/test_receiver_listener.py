"""The listener the receiver's three servers share, over real sockets on 127.0.0.1: a connection over the
limit is answered 503 at once (and reported), `stop` cuts the connections still held and is safe to repeat,
a second `start` is refused, and an error escaping a handler is logged under the server's event name."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from structlog.testing import capture_logs

from transcribed.receiver.listener import BoundedServer, Listener

DEADLINE = 10.0


@dataclass
class _Seen:
    held: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    refused: threading.Event = field(default_factory=threading.Event)


class _Hold(socketserver.StreamRequestHandler):
    """Holds its connection until the client (or `stop`) ends it; "boom" makes it raise."""

    server: BoundedServer[_Seen]

    def handle(self) -> None:
        self.server.settings.held.set()
        while line := self.rfile.readline():
            if line.strip() == b"boom":
                raise ValueError("a handler bug")
        self.server.settings.released.set()


@pytest.fixture
def held() -> Iterator[tuple[Listener[_Seen], _Seen]]:
    seen = _Seen()
    listener = Listener("test", "127.0.0.1", 0, _Hold, seen, max_connections=1, error_event="test_server_error",
                        on_refused=seen.refused.set)
    listener.start()
    yield listener, seen
    listener.stop()


def test_over_the_limit_is_answered_503_and_stop_cuts_what_is_held(held: tuple[Listener[_Seen], _Seen]) -> None:
    listener, seen = held
    with socket.create_connection(listener.address, timeout=DEADLINE) as first:
        assert seen.held.wait(DEADLINE)
        with socket.create_connection(listener.address, timeout=DEADLINE) as second:
            assert second.recv(1024).startswith(b"HTTP/1.1 503 ")
        assert seen.refused.is_set()
        assert listener.stop() is True          # returns although the first client never hung up
        assert seen.released.is_set()
        assert first.recv(1024) == b""
    assert listener.stop() is False
    with pytest.raises(RuntimeError, match="test server is not started"):
        _ = listener.address


def test_a_second_start_is_refused(held: tuple[Listener[_Seen], _Seen]) -> None:
    listener, _ = held
    with pytest.raises(RuntimeError, match="already started"):
        listener.start()
    assert repr(listener) == "Listener(listen='127.0.0.1':0)"


def test_a_handler_error_is_logged_under_the_server_event(held: tuple[Listener[_Seen], _Seen]) -> None:
    listener, seen = held
    with capture_logs() as logs, socket.create_connection(listener.address, timeout=DEADLINE) as client:
        assert seen.held.wait(DEADLINE)
        client.sendall(b"boom\n")
        assert client.recv(1024) == b""         # the server closed the connection after the error
    assert [entry["log_level"] for entry in logs if entry["event"] == "test_server_error"] == ["error"]
