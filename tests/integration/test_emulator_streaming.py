"""Uploads stream to disk: a 200 MB body keeps memory flat, chunked bodies work, oversize bodies get 413
(from Content-Length at once, or once exceeded), and connections are kept alive between requests."""

from __future__ import annotations

import hashlib
import http.client
import socket
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
from tests.integration.emulator_fixtures import KEY, api, check_error, emulator, emulator_factory, make_wav, wav

from transcribed.emulator import Emulator

__all__ = ["api", "emulator", "emulator_factory", "wav"]  # fixtures used by name

MB = 1024 * 1024


def test_a_200_mb_upload_keeps_memory_flat(emulator_factory: Callable[..., Emulator], tmp_path: Path) -> None:
    emulator = emulator_factory(data_dir=None)  # a private dir, removed on stop: 200 MB do not linger
    big = tmp_path / "big.wav"
    with open(big, "wb") as handle:
        handle.truncate(200 * MB)  # sparse: costs no disk
    tracemalloc.start()
    try:
        with httpx.Client(base_url=emulator.base_url, headers={"x-gladia-key": KEY}) as api, \
                open(big, "rb") as handle:
            response = api.post("/v2/upload", files={"audio": ("big.wav", handle, "application/octet-stream")})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 200, response.text
    assert response.json()["audio_metadata"]["size"] == 200 * MB
    assert peak < 50 * MB, f"peak traced memory {peak / MB:.1f} MB while uploading 200 MB"
    assert emulator.counters()["bytes_uploaded"] == 200 * MB


def multipart(parts: Iterator[bytes], filename: str = "chunked.bin") -> Iterator[bytes]:
    yield f'--edge\r\nContent-Disposition: form-data; name="audio"; filename="{filename}"\r\n\r\n'.encode()
    yield from parts
    yield b"\r\n--edge--\r\n"


def test_a_chunked_upload_is_stored_byte_for_byte(api: httpx.Client, tmp_path: Path) -> None:
    pieces = [bytes([index]) * (64 * 1024 + index) for index in range(20)]
    response = api.post("/v2/upload", content=multipart(iter(pieces)),
                        headers={"Content-Type": "multipart/form-data; boundary=edge"})
    assert response.status_code == 200, response.text
    assert response.request.headers["transfer-encoding"] == "chunked"
    served = api.get(response.json()["audio_url"]).content
    assert hashlib.sha256(served).hexdigest() == hashlib.sha256(b"".join(pieces)).hexdigest()
    assert response.json()["audio_metadata"]["filename"] == "chunked.bin"


def test_oversize_uploads_get_413_and_leave_nothing_behind(emulator_factory: Callable[..., Emulator],
                                                           tmp_path: Path) -> None:
    emulator = emulator_factory(max_upload_bytes=MB, data_dir=tmp_path / "data")
    five = tmp_path / "five.bin"
    with open(five, "wb") as handle:
        handle.truncate(5 * MB)
    with httpx.Client(base_url=emulator.base_url, headers={"x-gladia-key": KEY}) as api:
        with open(five, "rb") as handle:
            declared = api.post("/v2/upload", files={"audio": ("five.bin", handle, "application/octet-stream")})
        check_error(declared, 413, "PayloadTooLargeErrorResponse")
        streamed = api.post("/v2/upload", content=multipart(iter([bytes(64 * 1024)] * 40)),
                            headers={"Content-Type": "multipart/form-data; boundary=edge"})
        check_error(streamed, 413, "PayloadTooLargeErrorResponse")
        assert api.get("/v2/pre-recorded").status_code == 200  # still serving
    assert list((tmp_path / "data" / "files").iterdir()) == []
    assert "bytes_uploaded" not in emulator.counters()
    assert emulator.counters()["POST /v2/upload 413"] == 2


def test_expect_continue_gets_413_before_the_body_is_sent(emulator_factory: Callable[..., Emulator]) -> None:
    emulator = emulator_factory(max_upload_bytes=MB)
    port = int(emulator.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(f"POST /v2/upload HTTP/1.1\r\nHost: x\r\nx-gladia-key: {KEY}\r\n"
                           f"Content-Type: multipart/form-data; boundary=edge\r\n"
                           f"Content-Length: {500 * MB}\r\nExpect: 100-continue\r\n\r\n".encode())
        answer = connection.makefile("rb").readline()
    assert answer.startswith(b"HTTP/1.1 413")


def test_requests_share_one_kept_alive_connection(emulator: Emulator, tmp_path: Path) -> None:
    host, port = emulator.base_url.removeprefix("http://").split(":")
    audio = make_wav(tmp_path / "a.wav").read_bytes()
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        sockets = set()
        for _ in range(3):
            body = b"--edge\r\nContent-Disposition: form-data; name=audio; filename=a.wav\r\n\r\n" + audio
            body += b"\r\n--edge--\r\n"
            connection.request("POST", "/v2/upload", body=body, headers={
                "x-gladia-key": KEY, "Content-Type": "multipart/form-data; boundary=edge"})
            response = connection.getresponse()
            assert response.status == 200 and response.read()
            connection.request("GET", "/v2/nowhere", headers={"x-gladia-key": KEY})
            missing = connection.getresponse()
            assert missing.status == 404 and missing.read()
            sockets.add(id(connection.sock))
        assert len(sockets) == 1
    finally:
        connection.close()
