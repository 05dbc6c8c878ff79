"""Fixtures for the callback receiver tests: a hub and a real CallbackServer on 127.0.0.1, and raw-socket
helpers for requests no well-behaved client would send.

Import the fixtures into a test module by name (`from tests.integration.callback_fixtures import ...`).
"""

from __future__ import annotations

import base64
import dataclasses
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from transcribed.config import CallbackConfig, Secret
from transcribed.receiver import CallbackHub, CallbackServer

SECRET = "whsec_" + base64.b64encode(b"the account webhook secret").decode()
GENEROUS = 30.0


@dataclass
class Receiver:
    """A started hub + server; `url` is the server's own address, `config.public_url` what Gladia calls."""

    hub: CallbackHub
    server: CallbackServer
    config: CallbackConfig

    @property
    def url(self) -> str:
        host, port = self.server.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def receiver_factory() -> Iterator[Callable[..., Receiver]]:
    """Start receivers: `public_url` is http://<listen>/transcribed (so the emulator's callbacks reach this
    server through the path prefix a reverse proxy would keep); keyword arguments override CallbackConfig
    fields (webhook_secret as plain text) or, for `server_options`, CallbackServer's. Stopped at teardown."""
    started: list[Receiver] = []

    def start(host: str = "127.0.0.1", server_options: dict[str, Any] | None = None, **overrides: Any) -> Receiver:
        if isinstance(overrides.get("webhook_secret"), str):
            overrides["webhook_secret"] = Secret(overrides["webhook_secret"])
        for _ in range(5):  # the chosen port may be taken between probe and bind: try another
            port = _free_port(host)
            shown = f"[{host}]" if ":" in host else host
            config = dataclasses.replace(
                CallbackConfig(enabled=True, listen=f"{shown}:{port}", public_url=f"http://{shown}:{port}/transcribed"),
                **overrides)
            hub = CallbackHub(config)
            server = CallbackServer(hub, config, **(server_options or {}))
            try:
                server.start()
            except OSError:
                continue
            receiver = Receiver(hub, server, config)
            started.append(receiver)
            return receiver
        pytest.fail("no free port for the callback server")

    yield start
    for receiver in started:
        receiver.server.stop()
        receiver.hub.close()


@pytest.fixture
def receiver(receiver_factory: Callable[..., Receiver]) -> Receiver:
    """A started receiver with the default limits and no webhook secret."""
    return receiver_factory()


def connect(receiver: Receiver) -> socket.socket:
    """Open a raw connection to the receiver (a generous timeout on every read)."""
    host, port = receiver.server.address
    connection = socket.create_connection((host, port), timeout=GENEROUS)
    return connection


def read_answer(connection: socket.socket) -> bytes:
    """Read until the server closes (every answer closes the connection); return all of it."""
    chunks = []
    while True:
        try:
            chunk = connection.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def status_of(answer: bytes) -> int:
    """The status code of a raw HTTP answer (0 when the server closed without one)."""
    if not answer:
        return 0
    return int(answer.split(b" ", 2)[1])


def raw(receiver: Receiver, data: bytes) -> int:
    """Send `data` as is, half-close, and return the answer's status."""
    with connect(receiver) as connection:
        try:
            connection.sendall(data)
            connection.shutdown(socket.SHUT_WR)
        except OSError:
            pass   # the server may answer (e.g. 503) and close before the request was all sent: read it
        return status_of(read_answer(connection))


def request(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    """A well-formed HTTP/1.1 request with Content-Length (unless `headers` names its own)."""
    fields = {"Host": "receiver", "Content-Type": "application/json", "Content-Length": str(len(body))}
    fields.update(headers or {})
    head = "".join(f"{name}: {value}\r\n" for name, value in fields.items() if value is not None)
    return f"{method} {path} HTTP/1.1\r\n{head}\r\n".encode("latin-1") + body
