"""The client's wire: one origin and key over httpx, with retries, the Retry-After gate and the outage breaker.

httpx errors and statuses are translated here, once, into TransientApiError / PermanentApiError /
AuthenticationError (errors.py); callers decide by type. `retrying` runs an idempotent call per RetryPolicy;
`send` makes one request and never retries (POST /v2/pre-recorded goes through it alone). The key is sent
only to the configured origin (redirects elsewhere never carry it) and never logged. A 429 (or a 503 with
Retry-After) closes its route (method + path template) for every caller of this transport: no request on it
leaves until the time is up, whichever worker or poller asks (RouteGate).
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import urljoin, urlsplit

import httpx
import structlog

from transcribed import __version__
from transcribed.errors import (
    ApiError,
    ApiUnavailableError,
    AuthenticationError,
    PermanentApiError,
    TransientApiError,
)
from transcribed.gladia.retry import (
    CircuitBreaker,
    RetryPolicy,
    RouteGate,
    hold_seconds,
    is_transient_status,
    parse_retry_after,
    route_key,
)

log = structlog.get_logger(__name__)

MAX_REDIRECTS = 5


class Stopped(Exception):
    """The caller's stop event was set while waiting: the call can be resumed later."""


class CountingReader:
    """A file wrapper httpx streams from: counts bytes for progress, aborts when `stop` is set."""

    def __init__(self, handle: IO[bytes], progress: Callable[[int], None] | None,
                 stop: threading.Event | None) -> None:
        self._handle = handle
        self._progress = progress
        self._stop = stop
        self.sent = 0

    def read(self, size: int = -1) -> bytes:
        if self._stop is not None and self._stop.is_set():
            raise Stopped("upload interrupted by shutdown")
        chunk = self._handle.read(size)
        self.sent += len(chunk)
        if self._progress is not None and chunk:
            self._progress(self.sent)
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        if offset == 0 and whence == 0:
            self.sent = 0
        return self._handle.seek(offset, whence)

    def tell(self) -> int:
        return self._handle.tell()

    def fileno(self) -> int:
        return self._handle.fileno()


class Transport:
    """Requests to one Gladia base URL with one key. Thread-safe: the client shares one between workers.

    Given `stop`, every wait (retry backoff, a held route) is `stop.wait(t)` and raises Stopped when it is set.
    `observer(method, path, status)`, when given, is told of every answer (status None: none came).
    """

    def __init__(self, base_url: str, api_key: str, *, request_timeout: float, upload_timeout: float,
                 policy: RetryPolicy, stop: threading.Event, rng: random.Random, clock: Callable[[], float],
                 http_transport: httpx.BaseTransport | None, breaker: CircuitBreaker,
                 observer: Callable[[str, str, int | None], None] | None, gate: RouteGate | None = None) -> None:
        self._observer = observer
        self.breaker = breaker
        self.gate = gate or RouteGate(clock=clock)
        self.base_url = base_url.rstrip("/")
        self.origin = origin(self.base_url)
        self._key = api_key
        self.policy = policy
        self.stop = stop
        self.rng = rng
        self.clock = clock
        self._request_timeout = httpx.Timeout(request_timeout)
        self.upload_timeout = httpx.Timeout(request_timeout, read=upload_timeout, write=upload_timeout)
        self._http = httpx.Client(
            transport=http_transport, follow_redirects=False, timeout=self._request_timeout,
            headers={"user-agent": f"transcribed/{__version__}", "x-gladia-version": f"transcribed/{__version__}"},
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )

    def close(self) -> None:
        self._http.close()

    def wait(self, seconds: float) -> None:
        """Wait `seconds` on the stop event; raise Stopped when it is set."""
        if self.stop.wait(seconds):
            raise Stopped("stopping")

    def retrying(self, method: str, route: str, send: Callable[[], httpx.Response]) -> Any:
        """Run an idempotent call with retries; return the decoded JSON body (None when empty).

        Raise ApiUnavailableError at once, the last TransientApiError when retries run out, other errors as
        they come."""
        started = self.clock()
        tries = 0
        while True:
            tries += 1
            try:
                return self.decode(send(), method, route)
            except ApiUnavailableError:
                raise
            except TransientApiError as exc:
                delay = self.policy.next_delay(tries, self.clock() - started, exc.retry_after, self.rng)
                if delay is None:
                    raise
                # A rate limit is logged once per episode by the gate (api_rate_limited), not per caller.
                held = hold_seconds(exc.status, exc.retry_after) is not None
                (log.debug if held else log.info)("api_retry", method=method, route=route, attempt=tries,
                                                  status=exc.status or None, retry_in=round(delay, 2),
                                                  error=exc.message)
                self.wait(delay)

    def send(self, method: str, url: str, *, probe: bool = False, **kwargs: Any) -> httpx.Response:
        """Send one request (following same-origin GET/DELETE redirects by hand so the key never leaves).

        `url` is a path on the base URL or an absolute URL. Translate transport failures into
        TransientApiError; return the final response unread-checked. A `probe` bypasses the circuit breaker
        and never waits for a held route (it raises TransientApiError instead).
        """
        target = url if url.startswith(("http://", "https://")) else self.base_url + url
        route = urlsplit(target).path
        self._through_gate(route_key(method, route), wait=not probe)
        if not probe and not self.breaker.allow():
            raise ApiUnavailableError("Gladia API unreachable; probing about once a minute", method=method,
                                      path=route)
        for _ in range(MAX_REDIRECTS + 1):
            headers = {"x-gladia-key": self._key} if origin(target) == self.origin else {}
            response = None
            try:
                response = self._http.request(method, target, headers=headers, **kwargs)
            except Stopped:
                raise
            except httpx.TimeoutException as exc:
                self._record(ok=False)
                raise TransientApiError(f"timed out ({exc.__class__.__name__})", method=method, path=route,
                                        body_sent=not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)) \
                    from None
            except httpx.TransportError as exc:
                self._record(ok=False)
                sent = not isinstance(exc, httpx.ConnectError)
                raise TransientApiError(f"connection failed ({exc.__class__.__name__})", method=method,
                                        path=route, body_sent=sent) from None
            finally:
                if self._observer is not None:
                    self._observer(method, route, None if response is None else response.status_code)
            self._record(ok=response.status_code < 500)
            self._hold_route(route_key(method, urlsplit(target).path), response)
            if response.is_redirect and method in ("GET", "DELETE"):
                location = response.headers.get("location", "")
                response.close()
                target = urljoin(target, location)
                continue
            return response
        raise PermanentApiError("too many redirects", method=method, path=route)

    def decode(self, response: httpx.Response, method: str, route: str) -> Any:
        """Return the JSON body of a 2xx response; raise the translated error for anything else."""
        status = response.status_code
        try:
            raw = response.read()
        except httpx.HTTPError:
            raise TransientApiError("connection lost while reading the answer", status=status, method=method,
                                    path=route, body_sent=True) from None
        if 200 <= status < 300:
            if not raw.strip():
                return None
            try:
                return json.loads(raw)
            except ValueError:
                raise TransientApiError("answer is not valid JSON (truncated?)", status=status, method=method,
                                        path=route, body_sent=True) from None
        raise _translate(status, raw, response.headers.get("retry-after"), method, route)

    def _record(self, *, ok: bool) -> None:
        if ok:
            if self.breaker.success():
                log.warning("api_back", base_url=self.base_url)
        elif self.breaker.failure():
            log.error("api_down", base_url=self.base_url, probe_every=self.breaker.probe_interval)

    def _through_gate(self, route: str, *, wait: bool = True) -> None:
        """Wait (on the stop event) until `route` is open: a Retry-After seen by any caller holds all.
        Without `wait` (a probe, which must not stall its caller), raise TransientApiError instead."""
        while (left := self.gate.remaining(route)) > 0:
            if not wait:
                raise TransientApiError(f"{route} held for {left:.1f} s more (Retry-After)", path=route)
            self.wait(left)

    def _hold_route(self, route: str, response: httpx.Response) -> None:
        """Close `route` for every caller when the answer says "not before" (429, or 503 + Retry-After)."""
        cap = self.policy.retry_after_cap
        retry_after = parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC), cap)
        seconds = hold_seconds(response.status_code, retry_after, cap)
        if seconds is not None and self.gate.hold(route, seconds):
            log.warning("api_rate_limited", route=route, status=response.status_code, wait=round(seconds, 2))


def _translate(status: int, raw: bytes, retry_after: str | None, method: str, route: str) -> ApiError:
    """Turn a non-2xx answer into the matching error, with Gladia's envelope fields when present."""
    message, request_id, validation = f"HTTP {status}", None, None
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        if isinstance(body.get("message"), str):
            message = body["message"][:500]
        if isinstance(body.get("request_id"), str):
            request_id = body["request_id"][:64]
        errors = body.get("validation_errors")
        if isinstance(errors, list):
            validation = [str(e)[:300] for e in errors[:20]]
    fields: dict[str, Any] = {"status": status, "request_id": request_id, "validation_errors": validation,
                              "method": method, "path": route}
    if status == 401:
        return AuthenticationError(message, **fields)
    if is_transient_status(status):
        wait = parse_retry_after(retry_after, datetime.now(UTC))
        return TransientApiError(message, retry_after=wait, body_sent=True, **fields)
    return PermanentApiError(message, **fields)


def origin(url: str) -> tuple[str, str]:
    """The (scheme, host[:port]) of `url`, lowercased: the key goes only where this matches the base URL's."""
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()
