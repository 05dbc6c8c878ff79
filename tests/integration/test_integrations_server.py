"""The integrations endpoint over real HTTP on 127.0.0.1, with recording handlers: what is refused before a
byte of the body is read, streaming to the spool, hang-ups, concurrency."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from transcribed import config
from transcribed.receiver.contract import Answer, AsrRequest, Received
from transcribed.receiver.integrations import Handlers, IntegrationsServer

TOKEN = "integration-token-0123456789"
BOUNDARY = "xYz0123"


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[AsrRequest, Received]] = []
        self.submitted: list[tuple[Path, Path]] = []
        self.gone_seen = threading.Event()
        self.hold = threading.Event()
        self.hold.set()
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()

    def answer(self, asked: AsrRequest, received: Received, gone: Callable[[], bool]) -> Answer | None:
        with self.lock:
            self.calls.append((asked, received))
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            body = received.path.read_bytes()
            received.path.unlink()
            while not self.hold.wait(0.05):
                if gone():
                    self.gone_seen.set()
                    return None
            return Answer(200, b"1\n00:00:00,000 --> 00:00:01,000\n" + str(len(body)).encode() + b"\n\n")
        finally:
            with self.lock:
                self.running -= 1

    def submit(self, path: Path, root: Path) -> str | None:
        self.submitted.append((path, root))
        return None


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[IntegrationsServer, Recorder, Path]]:
    settings = config.IntegrationsConfig(listen="127.0.0.1:0", token=config.Secret(TOKEN), max_body_mb=1.0,
                                         library_paths=(tmp_path / "library",))
    recorder = Recorder()
    spool = tmp_path / "spool"
    server = IntegrationsServer(settings, (tmp_path / "inbox",), spool,
                                Handlers(recorder.answer, recorder.submit))
    server.start()
    try:
        yield server, recorder, spool
    finally:
        recorder.hold.set()
        server.stop()


def _multipart(content: bytes) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"audio_file\"; filename=\"audio_file\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{BOUNDARY}--\r\n".encode()


def _headers_only(port: int, path: str, length: int, extra: str = "") -> bytes:
    """Send a request's head declaring `length` bytes of body, none of them; return the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall((f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                     f"Content-Length: {length}\r\n{extra}\r\n").encode())
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
        return answer


def test_refusals_come_before_the_body(served: tuple[IntegrationsServer, Recorder, Path]) -> None:
    server, recorder, spool = served
    port = server.address[1]
    started = time.monotonic()
    assert _headers_only(port, "/asr?encode=false", 50_000_000).startswith(b"HTTP/1.1 404")
    assert _headers_only(port, "/wrong-token-0123456789/asr", 500).startswith(b"HTTP/1.1 404")
    assert _headers_only(port, f"/{TOKEN}/asr?encode=false", 1_000_001).startswith(b"HTTP/1.1 413")
    assert _headers_only(port, f"/{TOKEN}/asr?output=docx", 100).startswith(b"HTTP/1.1 400")
    assert _headers_only(port, f"/{TOKEN}/sonarr", 2_000_000).startswith(b"HTTP/1.1 413")
    assert time.monotonic() - started < 30          # answered without waiting for bodies that never come
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(f"POST /{TOKEN}/asr HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        assert raw.recv(100).startswith(b"HTTP/1.1 411")
    assert recorder.calls == [] and list(spool.iterdir()) == []


def test_upload_is_streamed_and_answered(served: tuple[IntegrationsServer, Recorder, Path]) -> None:
    server, recorder, spool = served
    content = bytes(range(256)) * 3000
    connection = http.client.HTTPConnection("127.0.0.1", server.address[1], timeout=30)
    connection.request("POST", f"/{TOKEN}/asr?task=transcribe&language=en&output=srt&encode=false",
                       body=_multipart(content), headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                                                          "Expect": "100-continue"})
    response = connection.getresponse()
    assert response.status == 200 and str(len(content)).encode() in response.read()
    asked, received = recorder.calls[0]
    assert asked == AsrRequest("transcribe", "en", "srt", False)
    assert received.size == len(content) and received.path.parent == spool
    import hashlib

    assert received.sha256 == hashlib.sha256(content).hexdigest()
    health = http.client.HTTPConnection("127.0.0.1", server.address[1], timeout=10)
    health.request("GET", f"/{TOKEN}/")
    assert health.getresponse().status == 200


def test_a_hang_up_is_noticed_while_waiting(served: tuple[IntegrationsServer, Recorder, Path]) -> None:
    server, recorder, _ = served
    recorder.hold.clear()
    body = _multipart(b"pcm" * 100)
    with socket.create_connection(("127.0.0.1", server.address[1]), timeout=10) as raw:
        raw.sendall((f"POST /{TOKEN}/asr?encode=false HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                     f"boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body)
        deadline = time.monotonic() + 30
        while not recorder.calls and time.monotonic() < deadline:
            time.sleep(0.02)
    assert recorder.gone_seen.wait(30)


def test_requests_are_served_at_once(served: tuple[IntegrationsServer, Recorder, Path]) -> None:
    server, recorder, _ = served
    recorder.hold.clear()
    statuses: list[int] = []

    def one(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server.address[1], timeout=60)
        connection.request("POST", f"/{TOKEN}/asr?encode=false", body=_multipart(bytes([index]) * 1000),
                           headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
        statuses.append(connection.getresponse().status)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while recorder.running < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    recorder.hold.set()
    for thread in threads:
        thread.join(60)
    assert statuses == [200] * 4 and recorder.most == 4
