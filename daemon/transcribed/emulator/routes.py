"""The Gladia v2 pre-recorded routes of the emulator: what each endpoint does and answers (API.md §2-§5).

Transport concerns (framing, keep-alive, faults, auth) live in emulator_http; these functions take a parsed
request and return a Response.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from transcribed.emulator.faults import Counters, FaultBoard
from transcribed.emulator.jobs import JobStore, StoredFile, iso, seed_of
from transcribed.emulator.media import (
    CHUNK_BYTES,
    SYNTHETIC_SECONDS,
    FetchError,
    ReceivedFile,
    fetch,
    filename_from_url,
    is_loopback_url,
    probe,
    write_silent_wav,
)
from transcribed.emulator.multipart import (
    BodyTooLarge,
    MalformedBody,
    RequestBody,
    boundary_of,
    receive_audio_part,
)
from transcribed.emulator.query import BadQuery, parse_list_query
from transcribed.emulator.validation import is_url, request_params, validate_create

MAX_JSON_BYTES = 4 * 1024 * 1024
MULTIPART_OVERHEAD_BYTES = 64 * 1024
VALIDATION_MESSAGE = "Invalid parameter(s). See validation_errors for more details."
STATUS_MESSAGES = {400: "Bad Request", 401: "gladia key not found", 403: "Forbidden", 404: "Not found",
                   413: "payload too large", 422: "Invalid parameter", 429: "Too Many Requests",
                   500: "Internal server error", 502: "Bad Gateway", 503: "Service Unavailable",
                   504: "Gateway Timeout"}


@dataclass
class Response:
    """An answer: a status, then a JSON body, raw bytes, or a file streamed from disk."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    file: StoredFile | None = None


@dataclass
class Request:
    """A parsed request as the routes see it."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: Message
    body: RequestBody
    params: dict[str, str]


def json_response(status: int, payload: object, headers: list[tuple[str, str]] | None = None) -> Response:
    """Return a JSON response."""
    return Response(status, json.dumps(payload).encode(), "application/json; charset=utf-8", headers or [])


def error_response(status: int, path: str, message: str | None = None,
                   validation_errors: list[str] | None = None,
                   headers: list[tuple[str, str]] | None = None) -> Response:
    """Return Gladia's error envelope {timestamp, path, request_id, statusCode, message[, validation_errors]}."""
    body: dict[str, Any] = {"timestamp": iso(datetime.now(UTC)), "path": path,
                            "request_id": "G-" + uuid.uuid4().hex[:8], "statusCode": status,
                            "message": message or STATUS_MESSAGES.get(status, "Error")}
    if validation_errors:
        body["validation_errors"] = validation_errors
    return json_response(status, body, headers)


class HttpProblem(Exception):
    """Raised inside a route to answer with an error envelope."""

    def __init__(self, status: int, message: str | None = None, validation_errors: list[str] | None = None):
        super().__init__(message)
        self.status, self.message, self.validation_errors = status, message, validation_errors


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    key: str
    action: str


def _routes() -> list[Route]:
    table = [("POST", "/v2/upload", "upload"), ("GET", "/file/{id}", "file")]
    for prefix in ("/v2/pre-recorded", "/v2/transcription"):
        table += [("POST", prefix, "create"), ("GET", prefix, "list"), ("GET", prefix + "/{id}", "get"),
                  ("DELETE", prefix + "/{id}", "delete"), ("GET", prefix + "/{id}/file", "job_file")]
    return [Route(method, re.compile("^" + template.replace("{id}", "(?P<id>[^/]+)") + "$"),
                  f"{method} {template}", action) for method, template, action in table]


ROUTES = _routes()
ROUTE_KEYS = frozenset(route.key for route in ROUTES)


def match(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """Return the route for a method and (normalised) path with its parameters, or None."""
    for route in ROUTES:
        found = route.pattern.match(path)
        if found and route.method == method:
            return route, found.groupdict()
    return None


@dataclass
class Routes:
    """The endpoints, bound to the emulator's state."""

    store: JobStore
    faults: FaultBoard
    counters: Counters
    files_dir: Path
    public_base: Callable[[], str]
    own_prefixes: Callable[[], list[str]]
    max_upload_bytes: int
    job_created: Callable[[str], None]

    def body_limit(self, route: Route) -> int:
        """Return the most body bytes the route accepts."""
        if route.action == "upload":
            return self.faults.upload_limit(self.max_upload_bytes) + MULTIPART_OVERHEAD_BYTES
        return MAX_JSON_BYTES

    def call(self, route: Route, request: Request) -> Response:
        """Run the route; turn HttpProblem into the error envelope."""
        try:
            response: Response = getattr(self, "_" + route.action)(request)
            return response
        except HttpProblem as problem:
            return error_response(problem.status, request.path, problem.message, problem.validation_errors)
        except BodyTooLarge:
            return error_response(413, request.path)
        except MalformedBody as exc:
            return error_response(400, request.path, f"Malformed request body: {exc}")
        except OSError:
            # The emulator's own disk failed (full, read-only): answer like a backend in trouble.
            return error_response(500, request.path)

    def _upload(self, request: Request) -> Response:
        content_type = request.headers.get("Content-Type", "")
        if content_type.lower().startswith("multipart/"):
            return self._upload_multipart(request, content_type)
        if content_type.lower().startswith("application/json"):
            body = _read_json(request)
            problems = _upload_problems(body)
            if problems or not isinstance(body, dict):
                raise HttpProblem(400, VALIDATION_MESSAGE, problems)
            stored, error = self._audio_for(str(body["audio_url"]), upload=True)
            if stored is None:
                raise HttpProblem(error[0] if error and error[0] == 413 else 400, error[1] if error else None)
            return json_response(200, stored.upload_body(self.file_url(stored.id)))
        raise HttpProblem(400, "Content-Type must be multipart/form-data or application/json")

    def _upload_multipart(self, request: Request, content_type: str) -> Response:
        boundary = boundary_of(content_type)
        if boundary is None:
            raise HttpProblem(400, "Content-Type is missing Multipart Boundary.")
        file_id = str(uuid.uuid4())
        destination = self.files_dir / file_id
        try:
            found = receive_audio_part(request.body, boundary, destination,
                                       self.faults.upload_limit(self.max_upload_bytes))
        except BodyTooLarge:
            raise HttpProblem(413) from None
        except MalformedBody as exc:
            raise HttpProblem(400, f"Malformed multipart body: {exc}") from None
        if found is None:
            raise HttpProblem(400, VALIDATION_MESSAGE, ["audio should not be empty"])
        filename, received = found
        facts = probe(destination, filename)
        stored = StoredFile(id=file_id, path=destination, filename=filename, source=None,
                            extension=facts.extension, size=received.size, sha256=received.sha256,
                            duration=facts.duration, channels=facts.channels)
        self.store.add_file(stored)
        self.counters.add("bytes_uploaded", received.size)
        self.counters.add("files_uploaded")
        return json_response(200, stored.upload_body(self.file_url(file_id)))

    def file_url(self, file_id: str) -> str:
        """Return the audio_url of a stored file."""
        return f"{self.public_base()}/file/{file_id}"

    def _own_file_id(self, url: str) -> str | None:
        path = urlsplit(url).path
        found = re.fullmatch(r"/file/([0-9a-fA-F-]{36})", path)
        if found and any(url.startswith(prefix + "/file/") for prefix in self.own_prefixes()):
            return found.group(1).lower()
        return None

    def _audio_for(self, url: str, *, upload: bool) -> tuple[StoredFile | None, tuple[int, str] | None]:
        """Return the stored file an audio_url stands for, or (None, (error_code, message))."""
        own = self._own_file_id(url)
        if own is not None:
            stored = self._stored(own)
            return (stored, None) if stored else (None, (404 if upload else 422, "Audio file not found"))
        file_id = str(uuid.uuid4())
        destination = self.files_dir / file_id
        filename = filename_from_url(url)
        if is_loopback_url(url):
            try:
                received = fetch(url, destination, self.faults.upload_limit(self.max_upload_bytes))
            except FetchError as exc:
                return None, (413 if exc.too_large else 422, str(exc))
        else:
            # Offline try-out: any other URL is never fetched. It stands for a 30 s silent mono recording
            # whose transcript is seeded by the URL, so the emulator works without network access.
            silent = write_silent_wav(destination, SYNTHETIC_SECONDS)
            received = ReceivedFile(size=silent.size, sha256=seed_of(None, url).hex())
        facts = probe(destination, filename)
        stored = StoredFile(id=file_id, path=destination, filename=filename, source=url,
                            extension=facts.extension, size=received.size, sha256=received.sha256,
                            duration=facts.duration, channels=facts.channels)
        self.store.add_file(stored)
        return stored, None

    def _create(self, request: Request) -> Response:
        if not request.headers.get("Content-Type", "").lower().startswith("application/json"):
            _read_json(request, check_type=False)  # consume the body so the connection stays usable
            raise HttpProblem(400, "Content-Type must be application/json")
        body = _read_json(request)
        problems = validate_create(body)
        if problems or not isinstance(body, dict):
            raise HttpProblem(400, VALIDATION_MESSAGE, problems)
        stored, error = self._audio_for(str(body["audio_url"]), upload=False)
        job = self.store.create(params=request_params(body), custom_metadata=body.get("custom_metadata"),
                                stored=stored, seed=seed_of(stored, str(body["audio_url"])), planned_error=error)
        self.job_created(job["id"])
        prefix = request.path.rstrip("/")
        return json_response(201, {"id": job["id"], "result_url": f"{self.public_base()}{prefix}/{job['id']}"})

    def _get(self, request: Request) -> Response:
        body = self.store.get(request.params["id"])
        if body is None:
            raise HttpProblem(404)
        return json_response(200, body)

    def _delete(self, request: Request) -> Response:
        outcome = self.store.delete(request.params["id"])
        if outcome == "missing":
            raise HttpProblem(404)
        if outcome == "forbidden":
            raise HttpProblem(403, "The pre recorded job is not in a deletable state")
        return Response(202)

    def _job_file(self, request: Request) -> Response:
        stored = self.store.job_file(request.params["id"])
        if stored is None:
            raise HttpProblem(404)
        return Response(200, content_type="application/octet-stream", file=stored)

    def _stored(self, file_id: str) -> StoredFile | None:
        """Return a stored file by id; a file left in the data dir by an earlier run is taken back in
        (its original name is not known any more), so audio_urls survive a restart."""
        stored = self.store.file(file_id)
        path = self.files_dir / file_id
        if stored is not None or not re.fullmatch(r"[0-9a-f-]{36}", file_id) or not path.is_file():
            return stored
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                digest.update(chunk)
        facts = probe(path, file_id)
        stored = StoredFile(id=file_id, path=path, filename=file_id, source=None, extension=facts.extension,
                            size=path.stat().st_size, sha256=digest.hexdigest(), duration=facts.duration,
                            channels=facts.channels)
        self.store.add_file(stored)
        return stored

    def _file(self, request: Request) -> Response:
        stored = self._stored(request.params["id"].lower())
        if stored is None or not stored.path.exists():
            raise HttpProblem(404)
        return Response(200, content_type="application/octet-stream", file=stored)

    def _list(self, request: Request) -> Response:
        try:
            page = parse_list_query(request.query)
        except BadQuery as problem:
            raise HttpProblem(400, VALIDATION_MESSAGE, problem.problems) from None
        offset, limit = page.offset, page.limit
        if page.kinds and "pre-recorded" not in page.kinds:
            items: list[dict[str, Any]] = []  # the emulator holds no live sessions
        else:
            items = self.store.bodies(page.query)
        kept = [(name, value) for name, value in request.query if name not in ("offset", "limit")]
        base = f"{self.public_base()}{request.path}?"

        def link(start: int) -> str:
            return base + urlencode([*kept, ("offset", str(start)), ("limit", str(limit))])

        return json_response(200, {"first": link(0), "current": link(offset),
                                   "next": link(offset + limit) if offset + limit < len(items) else None,
                                   "items": items[offset: offset + limit]})


def _read_json(request: Request, *, check_type: bool = True) -> object:
    chunks, size = [], 0
    while data := request.body.read():
        size += len(data)
        if size > MAX_JSON_BYTES:  # the upload route allows large bodies, but never as JSON
            raise BodyTooLarge
        chunks.append(data)
    if not check_type:
        return None
    try:
        return json.loads(b"".join(chunks) or b"null")
    except ValueError:
        raise HttpProblem(400, "Unexpected token in JSON body") from None


def _upload_problems(body: object) -> list[str]:
    if not isinstance(body, dict):
        return ["request body must be a JSON object"]
    problems = [f"property {name} should not exist" for name in body if name != "audio_url"]
    url = body.get("audio_url")
    if not isinstance(url, str) or not is_url(url):
        problems.append("audio_url must be a URL address")
    return problems
