"""Retry policy, pure: which failures to retry and how long to wait (RELIABILITY.md).

Full-jitter exponential backoff U(0, min(cap, base * 2**n)), Retry-After honoured up to a cap, bounded
attempts and a deadline per call. Polling intervals grow x1.5 from ~1 s to ~30 s.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# Statuses worth retrying: the request may succeed later unchanged.
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# 5xx codes that say "this will never work" rather than "not now".
PERMANENT_SERVER_STATUSES = frozenset({501, 505})


def is_transient_status(status: int) -> bool:
    """Return True when an HTTP status means "try again later" (408, 429, most 5xx)."""
    if status in TRANSIENT_STATUSES:
        return True
    return 500 <= status <= 599 and status not in PERMANENT_SERVER_STATUSES


def parse_retry_after(value: str | None, now: datetime, cap: float = 300.0) -> float | None:
    """Given a Retry-After header (seconds or an HTTP date), return seconds to wait (<= cap), or None."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, min(cap, seconds))


@dataclass(frozen=True)
class RetryPolicy:
    """How one call is retried: at most `max_attempts` tries within `deadline` seconds."""

    max_attempts: int = 6
    deadline: float = 600.0
    base: float = 1.0
    cap: float = 60.0
    retry_after_cap: float = 300.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: U(0, min(cap, base * 2**attempt)) for the attempt-th retry (0-based)."""
        return rng.uniform(0.0, min(self.cap, self.base * (2 ** min(attempt, 30))))

    def next_delay(self, attempt: int, elapsed: float, retry_after: float | None,
                   rng: random.Random) -> float | None:
        """Given the number of tries made so far (>= 1), the time spent, and the server's Retry-After,
        return how long to wait before the next try, or None to give up."""
        if attempt >= self.max_attempts:
            return None
        delay = self.backoff(attempt - 1, rng)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.retry_after_cap))
        if elapsed + delay > self.deadline:
            return None
        return delay


def poll_intervals(initial: float = 1.0, factor: float = 1.5, cap: float = 30.0) -> Iterator[float]:
    """Yield the waits between polls of a job: initial, x factor each time, never above cap."""
    interval = initial
    while True:
        yield min(interval, cap)
        interval = min(interval * factor, cap)


def poll_deadline(audio_duration: float | None, floor: float = 15 * 60.0) -> float:
    """How long to keep polling one job before reconciling: max(15 min, 3 x audio duration)."""
    return max(floor, 3.0 * (audio_duration or 0.0))


class CircuitBreaker:
    """Stops hammering an API that is down (RELIABILITY.md R9).

    After `threshold` consecutive failures (transport errors, 5xx), the circuit opens: calls fail at once
    without touching the network, except one probe every `probe_interval` seconds. A success closes it.
    Thread-safe; pure apart from the injected clock.
    """

    def __init__(self, threshold: int = 5, probe_interval: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.probe_interval = probe_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._next_probe = 0.0

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._opened_at is not None

    def next_probe_in(self) -> float:
        """Seconds until a probe may be sent (0 when closed or due)."""
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self._next_probe - self._clock())

    def allow(self) -> bool:
        """Return True when a request may go out now (closed, or this is the one probe that is due)."""
        with self._lock:
            if self._opened_at is None:
                return True
            now = self._clock()
            if now >= self._next_probe:
                self._next_probe = now + self.probe_interval
                return True
            return False

    def success(self) -> bool:
        """Record an answer from the API; return True when this closed an open circuit."""
        with self._lock:
            was_open = self._opened_at is not None
            self._failures = 0
            self._opened_at = None
            return was_open

    def failure(self) -> bool:
        """Record a transport error or 5xx; return True when this opened the circuit."""
        with self._lock:
            self._failures += 1
            if self._opened_at is None and self._failures >= self.threshold:
                now = self._clock()
                self._opened_at = now
                self._next_probe = now + self.probe_interval
                return True
            return False


RATE_LIMIT_DEFAULT_SECONDS = 1.0
"""How long a route is held after a 429 that carries no usable Retry-After."""


def route_key(method: str, path: str) -> str:
    """Given a request's method and URL path, return its route: the method and the path from `/v2/` on,
    with every segment after the resource name as `{id}` ("GET /v2/pre-recorded/{id}"). A path prefix
    before `/v2/` (a proxy's) is dropped, so every URL of one endpoint maps to one route."""
    segments = [segment for segment in path.split("/") if segment]
    if "v2" in segments:
        segments = segments[segments.index("v2"):]
        segments = segments[:2] + ["{id}"] * len(segments[2:])
    return f"{method.upper()} /" + "/".join(segments)


def hold_seconds(status: int, retry_after: float | None, cap: float = 300.0) -> float | None:
    """Given an answer's status and its parsed Retry-After, return how long its whole route must stay
    quiet (every caller in the process, not just this one), or None when the answer holds nothing back:
    a 429 holds for Retry-After (RATE_LIMIT_DEFAULT_SECONDS without one), a 503 only when it says
    Retry-After; never longer than `cap`."""
    if status == 429:
        wait = RATE_LIMIT_DEFAULT_SECONDS if retry_after is None else retry_after
    elif status == 503 and retry_after is not None:
        wait = retry_after
    else:
        return None
    return max(0.0, min(cap, wait))


class RouteGate:
    """Per-route quiet periods after the API said "not before T" (a 429, or a 503 with Retry-After).

    Gladia's limits are per account, so a Retry-After speaks to the whole process: `hold` closes the route
    until then, and every sender asks `remaining` before it sends. Thread-safe; pure apart from the injected
    clock (it never waits itself: the caller waits on its stop event).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._until: dict[str, float] = {}

    def hold(self, route: str, seconds: float) -> bool:
        """Close `route` for `seconds` from now (a later end already set is kept). Return True when this
        starts a new episode (the route was open), so the caller logs it once, not once per worker."""
        with self._lock:
            now = self._clock()
            until = self._until.get(route, now)
            fresh = until <= now
            self._until[route] = max(until, now + seconds)
            return fresh and seconds > 0

    def remaining(self, route: str) -> float:
        """Seconds until `route` may be used again (0.0 when open)."""
        with self._lock:
            until = self._until.get(route)
            if until is None:
                return 0.0
            left = until - self._clock()
            if left <= 0:
                del self._until[route]
                return 0.0
            return left
