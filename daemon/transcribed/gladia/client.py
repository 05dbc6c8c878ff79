"""The Gladia v2 pre-recorded client: the endpoints, over the one transport that speaks HTTP to the API.

Requests, retries, the per-route Retry-After gate and the translation of httpx errors into TransientApiError /
PermanentApiError / AuthenticationError happen in `transport` (one boundary); callers decide by type.
Idempotent calls are retried per RetryPolicy; POST /v2/pre-recorded never is: `create_once` looks the attempt
id up in the job list before re-posting. The key is sent only to the configured origin and never logged.
"""

from __future__ import annotations

import functools
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import structlog

from transcribed.errors import (
    ApiUnavailableError,
    AuthenticationError,
    JobFailedError,
    MalformedResultError,
    PermanentApiError,
    TransientApiError,
)
from transcribed.gladia.result import JobView, parse_job
from transcribed.gladia.retry import CircuitBreaker, RetryPolicy, RouteGate, poll_intervals
from transcribed.gladia.transport import CountingReader, Transport, origin

# Re-exported: Stopped is part of the client's contract (its waits raise it), and callers import it from here.
from transcribed.gladia.transport import Stopped as Stopped

log = structlog.get_logger(__name__)

ATTEMPT_KEY = "transcribed_attempt"
LIST_PAGE_SIZE = 100
LIST_MAX_PAGES = 50



@dataclass(frozen=True)
class Upload:
    audio_url: str
    metadata: Mapping[str, Any]   # Gladia's audio_metadata: id, filename, extension, size, audio_duration, ...

    @property
    def duration(self) -> float | None:
        value = self.metadata.get("audio_duration")
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class CreatedJob:
    id: str
    result_url: str


@dataclass(frozen=True)
class JobSummary:
    """What a job-list item says for sure. List items may be abbreviated (a done job's `result` holding only
    `metadata`), so they are not parsed as full jobs."""

    id: str
    status: str
    custom_metadata: Mapping[str, Any] | None


def _summary(item: object) -> JobSummary | None:
    if not isinstance(item, dict):
        return None
    job_id, status, metadata = item.get("id"), item.get("status"), item.get("custom_metadata")
    if not isinstance(job_id, str) or not job_id or not isinstance(status, str):
        return None
    return JobSummary(job_id, status, metadata if isinstance(metadata, dict) else None)


class GladiaClient:
    """A client for one Gladia base URL and key. Thread-safe: share one between workers.

    Given `stop`, every wait (retry backoff, polling) is `stop.wait(t)` and raises Stopped when it is set.
    A 429 (or a 503 with Retry-After) closes its route for the whole client, whichever worker or poller asks.
    """

    def __init__(self, base_url: str, api_key: str, *, request_timeout: float = 30.0,
                 upload_timeout: float = 300.0, policy: RetryPolicy | None = None,
                 stop: threading.Event | None = None, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 transport: httpx.BaseTransport | None = None, breaker: CircuitBreaker | None = None,
                 observer: Callable[[str, str, int | None], None] | None = None,
                 gate: RouteGate | None = None) -> None:
        """`observer(method, path, status)`, when given, is told of every answer (status None: none came).
        `breaker` and `gate` are an earlier client's on a reload: an outage or a Retry-After is not forgotten."""
        self._transport = Transport(
            base_url, api_key, request_timeout=request_timeout, upload_timeout=upload_timeout,
            policy=policy or RetryPolicy(), stop=stop or threading.Event(), rng=rng or random.Random(),
            clock=clock, http_transport=transport, breaker=breaker or CircuitBreaker(clock=clock),
            observer=observer, gate=gate)

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    @property
    def breaker(self) -> CircuitBreaker:
        """The outage breaker (a reload hands it to the next client, so an outage is not forgotten)."""
        return self._transport.breaker

    @property
    def gate(self) -> RouteGate:
        """The Retry-After holds per route (a reload hands them to the next client too)."""
        return self._transport.gate

    def close(self) -> None:
        self._transport.close()


    def __enter__(self) -> GladiaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------------------- calls

    def upload(self, path: Path, *, filename: str | None = None,
               progress: Callable[[int], None] | None = None) -> Upload:
        """Upload a local file (streamed from disk, multipart part `audio`); return its audio_url.

        Retried on transient errors (a re-upload costs bandwidth, never a paid job).
        """
        # Multipart names must be text: undecodable bytes of a file name become U+FFFD, control characters
        # spaces (Gladia shows it as file.filename; what identifies the file here is the ledger).
        raw = os.fsencode(filename or path.name).decode("utf-8", "replace")
        name = "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in raw)

        def send() -> httpx.Response:
            with open(path, "rb") as handle:
                reader = CountingReader(handle, progress, self._transport.stop)
                files = {"audio": (name, reader, "application/octet-stream")}
                return self._transport.send("POST", "/v2/upload", files=files, timeout=self._transport.upload_timeout)

        body = self._transport.retrying("POST", "/v2/upload", send)
        return _upload_from(body)

    def create(self, request: Mapping[str, Any]) -> CreatedJob:
        """POST /v2/pre-recorded once (never retried here: a retry may pay twice). See create_once."""
        response = self._transport.send("POST", "/v2/pre-recorded", json=dict(request))
        body = self._transport.decode(response, "POST", "/v2/pre-recorded")
        job_id, result_url = body.get("id") if isinstance(body, dict) else None, None
        if isinstance(body, dict):
            result_url = body.get("result_url")
        if not isinstance(job_id, str) or not job_id:
            raise TransientApiError("create answered without a job id", status=response.status_code,
                                    method="POST", path="/v2/pre-recorded", body_sent=True)
        return CreatedJob(job_id, self._safe_result_url(job_id, result_url))

    def create_once(self, request: Mapping[str, Any], attempt_id: str, *, look_first: bool = False,
                    since: datetime | None = None) -> CreatedJob:
        """Create the job for `attempt_id` exactly once, even across unknown outcomes.

        The attempt id travels in custom_metadata. When a POST's outcome is unknown (timeout after the body
        was sent, reset, 5xx), the job list is searched for that attempt id before posting again.
        `look_first` searches before the first POST (an intent recorded before a crash).
        Raise PermanentApiError / AuthenticationError as they come, TransientApiError when retries run out.
        """
        body = dict(request)
        metadata = dict(body.get("custom_metadata") or {})
        metadata[ATTEMPT_KEY] = attempt_id
        body["custom_metadata"] = metadata
        since = since or datetime.now(UTC)
        wire = self._transport
        started = wire.clock()
        tries = 0
        while True:
            if look_first or tries > 0:
                found = self.find_attempt(attempt_id, since=since)
                if found is not None:
                    log.info("job_found_by_attempt", attempt_id=attempt_id, job_id=found.id)
                    return found
            tries += 1
            try:
                return self.create(body)
            except ApiUnavailableError:
                raise
            except TransientApiError as exc:
                delay = wire.policy.next_delay(tries, wire.clock() - started, exc.retry_after, wire.rng)
                log.warning("create_outcome_unknown", attempt_id=attempt_id, error=exc.describe(),
                            retry_in=None if delay is None else round(delay, 2))
                if delay is None:
                    raise
                wire.wait(delay)

    def find_attempt(self, attempt_id: str, *, since: datetime | None = None) -> CreatedJob | None:
        """Return the job whose custom_metadata carries this attempt id, or None. Never trusts the server's
        filter alone: every item is checked here, and the search is bounded by date and pages."""
        try:
            items = list(self.list_jobs({ATTEMPT_KEY: attempt_id}, since=since))
        except AuthenticationError:
            raise
        except PermanentApiError as exc:
            # The custom_metadata query form is not settled (API.md §5): a server that refuses ours is asked
            # again with the date bound alone, and every item is checked here anyway.
            log.info("list_filter_refused", error=exc.describe())
            items = list(self.list_jobs(None, since=since))
        for item in items:
            meta = item.custom_metadata or {}
            if meta.get(ATTEMPT_KEY) == attempt_id:
                return CreatedJob(item.id, self._safe_result_url(item.id, None))
        return None

    def list_jobs(self, metadata: Mapping[str, str] | None = None, *, since: datetime | None = None,
                  statuses: Sequence[str] = ()) -> Iterator[JobSummary]:
        """Yield jobs from GET /v2/pre-recorded (newest first), filtered by custom_metadata and status when
        given (callers still check each item: a server may ignore a filter)."""
        params: list[tuple[str, str]] = [("offset", "0"), ("limit", str(LIST_PAGE_SIZE))]
        params += [("status", status) for status in statuses]
        for key, value in (metadata or {}).items():
            params.append((f"custom_metadata[{key}]", value))
        if since is not None:
            # Clock skew between us and Gladia: look a little further back than the intent.
            after = since - timedelta(minutes=10)
            params.append(("after_date", after.strftime("%Y-%m-%dT%H:%M:%S.000Z")))
        url: str | None = self.base_url + "/v2/pre-recorded"
        query: list[tuple[str, str]] | None = params
        for _ in range(LIST_MAX_PAGES):
            if url is None:
                return
            send = functools.partial(self._transport.send, "GET", url, params=query)
            body = self._transport.retrying("GET", "/v2/pre-recorded", send)
            if not isinstance(body, dict) or not isinstance(body.get("items"), list):
                raise TransientApiError("job list answered without items", method="GET", path="/v2/pre-recorded")
            for raw in body["items"]:
                summary = _summary(raw)
                if summary is not None:
                    yield summary
            following = body.get("next")
            url = following if isinstance(following, str) and origin(following) == self._transport.origin else None
            query = None

    def get(self, job_id: str, result_url: str | None = None) -> JobView:
        """GET the job (its result_url when it is on our origin); return the parsed body.

        A body that is not a valid job is reported as TransientApiError (it may be a truncated answer).
        """
        url = self._safe_result_url(job_id, result_url)
        body = self._transport.retrying("GET", "/v2/pre-recorded/{id}", lambda: self._transport.send("GET", url))
        try:
            return parse_job(body)
        except MalformedResultError as exc:
            raise TransientApiError(f"malformed job body: {exc}", method="GET", path="/v2/pre-recorded/{id}") \
                from exc

    def delete(self, job_id: str) -> bool:
        """DELETE the job; return True when Gladia accepted (202), False when it was already gone (404)."""
        try:
            self._transport.retrying("DELETE", "/v2/pre-recorded/{id}",
                                     lambda: self._transport.send("DELETE", f"/v2/pre-recorded/{job_id}"))
        except PermanentApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def wait(self, job: CreatedJob, *, initial: float = 1.0, cap: float = 30.0, deadline: float = 900.0,
             notice: Callable[[float], bool] | None = None, look_now: bool = False) -> JobView:
        """Poll the job until done (return it) or error (raise JobFailedError).

        Intervals grow x1.5 from `initial` to `cap`. With `notice` (a callback receiver's wait: returns True
        when Gladia said the job ended), the first GET waits for the notice and polling is only a safety net
        every `cap` seconds (`look_now`: one GET first, for a job that may have ended while nobody listened).
        Transient failures keep polling; past `deadline` seconds raise
        TransientApiError (the job id stays valid: poll again later, never re-create).
        """
        started = self._transport.clock()
        intervals = poll_intervals(cap, 1.0, cap) if notice else poll_intervals(initial, 1.5, cap)
        if notice is not None and not look_now:
            self._pause(next(intervals), notice)
        while True:
            try:
                view = self.get(job.id, job.result_url)
            except ApiUnavailableError:
                raise
            except TransientApiError as exc:
                log.info("poll_failed", job_id=job.id, error=exc.describe())
            else:
                if view.status == "done":
                    if view.result is None:
                        raise TransientApiError("job done without a result", method="GET", path="/v2/pre-recorded/{id}")
                    return view
                if view.status == "error":
                    raise JobFailedError(job.id, view.error_code)
            elapsed = self._transport.clock() - started
            if elapsed >= deadline:
                raise TransientApiError(f"job still not finished after {elapsed:.0f} s; will poll again later",
                                        method="GET", path="/v2/pre-recorded/{id}")
            self._pause(min(next(intervals), max(0.0, deadline - elapsed)), notice)

    def _pause(self, seconds: float, notice: Callable[[float], bool] | None) -> None:
        """Wait between polls: `seconds`, cut short by a notice; raise Stopped when stopping."""
        if notice is None:
            self._transport.wait(seconds)
            return
        deadline = self._transport.clock() + seconds
        while not self._transport.stop.is_set():
            remaining = deadline - self._transport.clock()
            if remaining <= 0 or notice(min(remaining, 0.5)):
                break
        if self._transport.stop.is_set():
            raise Stopped("stopping")

    # ---------------------------------------------------------------------------------------------- checks

    def probe(self) -> bool:
        """One cheap request (a one-item job list) that bypasses the circuit breaker; True if the API answered
        (even with an error status below 500). Never waits: False while a Retry-After holds the list route."""
        try:
            response = self._transport.send("GET", "/v2/pre-recorded", params={"offset": "0", "limit": "1"}, probe=True)
        except TransientApiError:
            return False
        response.close()
        return response.status_code < 500

    def check_key(self) -> bool | None:
        """Check the key by itself with one cheap authenticated request (a one-item job list), not retried:
        True when Gladia accepts it, False when it refuses it (401), None when the answer says neither
        (unreachable, 5xx, 429, any other status)."""
        try:
            response = self._transport.send("GET", "/v2/pre-recorded", params={"offset": "0", "limit": "1"}, probe=True)
        except TransientApiError:
            return None
        response.close()
        if response.status_code == 401:
            return False
        return True if 200 <= response.status_code < 300 else None

    def _safe_result_url(self, job_id: str, result_url: object) -> str:
        """Use Gladia's result_url only when it is on our origin; else build it (the key stays home)."""
        if isinstance(result_url, str) and origin(result_url) == self._transport.origin:
            return result_url
        return f"{self.base_url}/v2/pre-recorded/{job_id}"


def _upload_from(body: object) -> Upload:
    if not isinstance(body, dict) or not isinstance(body.get("audio_url"), str):
        raise TransientApiError("upload answered without audio_url", method="POST", path="/v2/upload")
    metadata = body.get("audio_metadata")
    return Upload(body["audio_url"], metadata if isinstance(metadata, dict) else {})

