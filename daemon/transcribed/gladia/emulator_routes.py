"""The Gladia v2 pre-recorded routes of the emulator: what each endpoint does and answers (API.md §2-§5).

Transport concerns (framing, keep-alive, faults, auth) live in emulator_http; these functions take a parsed
request and return a Response.
"""

from __future__ import annotations

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

from transcribed.gladia.emulator_faults import Counters, FaultBoard
from transcribed.gladia.emulator_jobs import JobStore, ListQuery, StoredFile, iso, seed_of
from transcribed.gladia.emulator_media import (
    SYNTHETIC_SECONDS,
    FetchError,
    ReceivedFile,
    fetch,
    filename_from_url,
    is_loopback_url,
    probe,
    write_silent_wav,
)
from transcribed.gladia.emulator_multipart import (
    BodyTooLarge,
    MalformedBody,
    RequestBody,
    boundary_of,
    receive_audio_part,
)
from transcribed.gladia.emulator_validation import is_url, request_params, validate_create

MAX_JSON_BYTES = 4 * 1024 * 1024
MULTIPART_OVERHEAD_BYTES = 64 * 1024
VALIDATION_MESSAGE = "Invalid parameter(s). See validation_errors for more details."
STATUS_MESSAGES = {400: "Bad Request", 401: "gladia key not found", 403: "Forbidden", 404: "Not found",
                   413: "payload too large", 422: "Invalid parameter", 429: "Too Many Requests",
                   500: "Internal server error", 502: "Bad Gateway", 503: "Service Unavailable",
                   504: "Gateway Timeout"}
_STATUSES = ("queued", "processing", "done", "error")


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
            stored = self.store.file(own)
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

    def _file(self, request: Request) -> Response:
        stored = self.store.file(request.params["id"].lower())
        if stored is None or not stored.path.exists():
            raise HttpProblem(404)
        return Response(200, content_type="application/octet-stream", file=stored)

    def _list(self, request: Request) -> Response:
        page = parse_list_query(request.query)
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


@dataclass(frozen=True)
class ListPage:
    """What a list request asks for: filters, kinds (legacy alias), and the page window."""

    query: ListQuery
    kinds: frozenset[str]
    offset: int
    limit: int


def parse_list_query(pairs: list[tuple[str, str]]) -> ListPage:
    """Given the list's query pairs, return the page asked for; raise HttpProblem(400) for bad values.
    custom_metadata is accepted in both forms: `custom_metadata[key]=value` and a JSON object string."""
    problems: list[str] = []
    values: dict[str, str] = dict(pairs)
    offset = _whole(values.get("offset", "0"), "offset", 0, problems)
    limit = _whole(values.get("limit", "20"), "limit", 1, problems)
    statuses = {part for name, value in pairs if name in ("status", "status[]") for part in value.split(",") if part}
    if statuses - set(_STATUSES):
        problems.append("each value in status must be one of the following values: " + ", ".join(_STATUSES))
    kinds = {part for name, value in pairs if name in ("kind", "kind[]") for part in value.split(",") if part}
    day = values.get("date")
    if day is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day[:10]):
        problems.append("date must be a valid ISO 8601 date string")
    before = _moment(values.get("before_date"), "before_date", problems)
    after = _moment(values.get("after_date"), "after_date", problems)
    metadata: list[tuple[str, object, bool]] = []
    for name, value in pairs:
        deep = re.fullmatch(r"custom_metadata\[([^\]]+)\]", name)
        if deep:
            metadata.append((deep.group(1), value, True))
        elif name == "custom_metadata":
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict):
                problems.append("custom_metadata must be a JSON object")
            else:
                metadata += [(key, wanted, False) for key, wanted in parsed.items()]
    if problems:
        raise HttpProblem(400, VALIDATION_MESSAGE, problems)
    query = ListQuery(statuses=frozenset(statuses), day=day[:10] if day else None, before=before, after=after,
                      metadata=tuple(metadata))
    return ListPage(query=query, kinds=frozenset(kinds), offset=offset, limit=limit)


def _whole(text: str, name: str, least: int, problems: list[str]) -> int:
    try:
        number = int(text)
    except ValueError:
        problems.append(f"{name} must be an integer number")
        return least
    if number < least:
        problems.append(f"{name} must not be less than {least}")
        return least
    return number


def _moment(text: str | None, name: str, problems: list[str]) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        problems.append(f"{name} must be a valid ISO 8601 date string")
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _read_json(request: Request, *, check_type: bool = True) -> object:
    chunks = []
    while data := request.body.read():
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
