"""Fixtures and helpers for the emulator tests: emulators on 127.0.0.1, httpx clients, WAV files, a tiny
receiver for callbacks, polling helpers, and validation against Gladia's OpenAPI document.

Import the fixtures into a test module by name (`from tests.integration.emulator_fixtures import ...`).
"""

from __future__ import annotations

import json
import re
import threading
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from transcribed.emulator import Emulator, EmulatorSettings, Faults

KEY = "test-key-" + "0" * 8
# A copy of /work/shared/gladia/openapi.json (Gladia's own document), kept beside the tests so they run
# anywhere the repository is checked out.
OPENAPI_PATH = Path(__file__).with_name("emulator_openapi.json")
ISO_MS_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _nullable(node: Any) -> Any:
    """OpenAPI's `nullable: true` is not JSON Schema: turn it into anyOf [null, the schema]."""
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable(value) for key, value in node.items()}
    if node.pop("nullable", False):
        return {"anyOf": [{"type": "null"}, node]}
    return node


def _document() -> dict[str, Any]:
    document = json.loads(OPENAPI_PATH.read_text())
    # The spec's own example job has "custom_metadata": null (and so does API.md §12.7), but the schema
    # forgot `nullable`; accept null there, as the real API sends it.
    schemas = document["components"]["schemas"]
    schemas["PreRecordedResponse"]["properties"]["custom_metadata"]["nullable"] = True
    # The schema types each audio_to_llm prompt as an array, but its own example (and the docs) send
    # strings; accept both.
    schemas["AudioToLlmListConfigDTO"]["properties"]["prompts"]["items"] = {"type": ["string", "array"]}
    return _nullable(document)


_REGISTRY = Registry().with_resource("urn:gladia-openapi",
                                     Resource(contents=_document(), specification=DRAFT202012))
_FORMATS = FormatChecker()


@_FORMATS.checks("date-time")
def _is_gladia_time(value: object) -> bool:
    return not isinstance(value, str) or bool(ISO_MS_Z.fullmatch(value))


@_FORMATS.checks("uri")
def _is_uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def check_schema(name: str, instance: object) -> None:
    """Fail with every violation when `instance` does not match components.schemas[name]."""
    validator = Draft202012Validator({"$ref": f"urn:gladia-openapi#/components/schemas/{name}"},
                                     registry=_REGISTRY, format_checker=_FORMATS)
    errors = [f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
              for error in validator.iter_errors(instance)]
    assert not errors, f"{name} violations:\n" + "\n".join(errors[:20])


def check_error(response: httpx.Response, status: int, schema: str = "BadRequestErrorResponse") -> dict[str, Any]:
    """Assert an error envelope with this status, valid against `schema`; return its body."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    check_schema(schema, body)
    assert body["statusCode"] == status
    assert ISO_MS_Z.fullmatch(body["timestamp"])
    assert re.fullmatch(r"G-[0-9a-f]{8}", body["request_id"])
    return body


def make_wav(path: Path, seconds: float = 3.0, channels: int = 1, rate: int = 16_000, tone: int = 0) -> Path:
    """Write a 16-bit PCM WAV; `tone` varies the content (and so the transcript seed)."""
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        frame = (tone % 65536).to_bytes(2, "little") * channels
        writer.writeframes(frame * int(rate * seconds))
    return path


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, message: str = "condition") -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {message}")
        pause.wait(0.01)


def wait_status(api: httpx.Client, job_id: str, *statuses: str) -> dict[str, Any]:
    """Poll GET /v2/pre-recorded/{id} until its status is one of `statuses` (default done/error)."""
    wanted = statuses or ("done", "error")

    def current() -> dict[str, Any] | None:
        body: dict[str, Any] = api.get(f"/v2/pre-recorded/{job_id}").json()
        return body if body["status"] in wanted else None

    result: dict[str, Any] = wait_for(current, message=f"job {job_id} to reach {wanted}")
    return result


def upload(api: httpx.Client, path: Path, filename: str | None = None) -> dict[str, Any]:
    """Upload a file (multipart part "audio"); assert 200 and return the body."""
    with open(path, "rb") as handle:
        response = api.post("/v2/upload", files={"audio": (filename or path.name, handle,
                                                           "application/octet-stream")})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def create(api: httpx.Client, audio_url: str, **options: Any) -> dict[str, Any]:
    """Create a job; assert 201 and return {id, result_url}."""
    response = api.post("/v2/pre-recorded", json={"audio_url": audio_url, **options})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def emulator_factory(tmp_path: Path) -> Iterator[Callable[..., Emulator]]:
    """Start emulators with settings overrides (and faults); all are stopped at teardown."""
    started: list[Emulator] = []

    def start(faults: Faults | None = None, **overrides: Any) -> Emulator:
        settings = replace(EmulatorSettings(processing_seconds=0.05, data_dir=tmp_path / f"data{len(started)}"),
                           **overrides)
        emulator = Emulator(settings, faults)
        emulator.start()
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()


@pytest.fixture
def emulator(emulator_factory: Callable[..., Emulator]) -> Emulator:
    """A started emulator with fast processing."""
    return emulator_factory()


@pytest.fixture
def api(emulator: Emulator) -> Iterator[httpx.Client]:
    """An httpx client for `emulator`, carrying the key."""
    with httpx.Client(base_url=emulator.base_url, headers={"x-gladia-key": KEY}, timeout=30) as client:
        yield client


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    """A 3-second mono WAV."""
    return make_wav(tmp_path / "meeting.wav")


@dataclass
class Received:
    """One request the receiver got."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A tiny HTTP server on 127.0.0.1 that records every request and serves `files` on GET."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.files: dict[str, bytes] = {}
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with receiver._changed:
                    receiver.requests.append(Received(self.command, self.path,
                                                      {k.lower(): v for k, v in self.headers.items()}, body))
                    receiver._changed.notify_all()
                payload = receiver.files.get(self.path, b"ok") if self.command == "GET" else b"ok"
                status = 200 if self.command != "GET" or self.path in receiver.files else 404
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = _record

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = False  # so server_close joins the handler threads
        self._server.block_on_close = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="test-receiver")

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def wait(self, count: int, timeout: float = 30.0) -> list[Received]:
        """Wait until at least `count` requests arrived; return them all."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"receiver got {len(self.requests)} request(s), wanted {count}")
                self._changed.wait(left)
            return list(self.requests)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A started Receiver, stopped at teardown."""
    running = Receiver().start()
    yield running
    running.stop()


IN_FLIGHT_SLACK = 0.5
"""Requests reaching the emulator this soon after a 429 was answered count as already in flight when the
client read it (the hold cannot recall them); anything later inside the Retry-After window broke it."""


def sent_while_held(requests: list[dict[str, Any]], route: str, retry_after: float) -> list[dict[str, Any]]:
    """Given the emulator's request log, return the requests on `route` that arrived while a 429 on that
    route still held it: later than IN_FLIGHT_SLACK after the 429's answer, earlier than `retry_after`
    seconds after it (less 10 ms for the two processes' clocks)."""
    answers = [entry["answered_at"] for entry in requests if entry["route"] == route and entry["status"] == 429]
    return [entry for entry in requests if entry["route"] == route for answered in answers
            if answered + IN_FLIGHT_SLACK < entry["received_at"] < answered + retry_after - 0.01]
