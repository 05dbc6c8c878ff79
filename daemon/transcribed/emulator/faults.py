"""Fault switches of the Gladia emulator, the seeded decisions taken from them, and request counters.

Everything here is thread-safe: handler threads ask for decisions while tests (in-process or over
`POST /_emulator/faults`) change the switches.
"""

from __future__ import annotations

import copy
import dataclasses
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

ANY_ROUTE = "*"
"""Key of the per-route maps that applies to every API route without an entry of its own."""


@dataclass
class Faults:
    """What the emulator breaks on purpose. Every switch is off by default.

    Per-route maps are keyed by route key ("POST /v2/upload", "POST /v2/pre-recorded",
    "GET /v2/pre-recorded/{id}", "GET /v2/pre-recorded", "DELETE /v2/pre-recorded/{id}", ...) or by
    "*" for every API route that has no entry of its own. Probabilities are in [0, 1]; "next" counts
    are consumed one per request.
    """

    server_error_rate: dict[str, float] = field(default_factory=dict)
    """Probability that a request is answered with a 5xx chosen from `server_error_statuses`."""
    server_error_next: dict[str, int] = field(default_factory=dict)
    """The next N requests on the route get a 5xx."""
    server_error_statuses: tuple[int, ...] = (500, 502, 503)
    server_error_after_effect: bool = False
    """When true the 5xx is sent after the route did its work (job created, file stored)."""
    rate_limit_next: dict[str, int] = field(default_factory=dict)
    """The next N requests on the route get 429 with Retry-After."""
    retry_after_seconds: int = 1
    retry_after_http_date: bool = False
    """Send Retry-After as an HTTP date (now + retry_after_seconds) instead of seconds."""
    drop_rate: dict[str, float] = field(default_factory=dict)
    """Probability that the connection is reset after the request body was read (and acted on)."""
    drop_next: dict[str, int] = field(default_factory=dict)
    delay_seconds: dict[str, float] = field(default_factory=dict)
    """Wait this long before answering (a slow or stalled API)."""
    truncate_rate: dict[str, float] = field(default_factory=dict)
    """Probability that a JSON body is cut in half (with a matching Content-Length)."""
    job_error_rate: float = 0.0
    """Probability that a job ends in `error` with `job_error_code`."""
    job_error_code: int = 500
    max_upload_bytes: int | None = None
    """Overrides EmulatorSettings.max_upload_bytes at runtime when set."""
    down: bool = False
    """Every API request fails: with `down_status`, or by a connection reset when that is None."""
    down_status: int | None = 503
    hold_jobs: bool = False
    """Processing jobs do not finish while set (a stalled backend), so queued ones wait for a free slot;
    jobs whose time has come finish as soon as it is cleared."""


_ROUTE_PROBABILITIES = ("server_error_rate", "drop_rate", "truncate_rate")
_ROUTE_COUNTS = ("server_error_next", "rate_limit_next", "drop_next")


def checked_faults(faults: Faults, routes: frozenset[str] | None = None) -> Faults:
    """Given switches (and the route keys that exist, when known), return a normalised deep copy; raise
    ValueError naming every bad switch, including per-route entries for routes that do not exist."""
    faults = copy.deepcopy(faults)
    problems: list[str] = []
    for name in (*_ROUTE_PROBABILITIES, *_ROUTE_COUNTS, "delay_seconds"):
        mapping = getattr(faults, name)
        if not isinstance(mapping, dict) or not all(isinstance(key, str) for key in mapping):
            problems.append(f"{name} must map route keys to numbers")
            continue
        for key, value in mapping.items():
            if routes is not None and key != ANY_ROUTE and key not in routes:
                problems.append(f"{name}: no route {key!r} (use one of: {', '.join(sorted(routes))}, or *)")
            elif not _is_number(value):
                problems.append(f"{name}[{key}] must be a number")
            elif name in _ROUTE_PROBABILITIES and not 0 <= value <= 1:
                problems.append(f"{name}[{key}] must be within 0..1")
            elif name in _ROUTE_COUNTS and (int(value) != value or value < 0):
                problems.append(f"{name}[{key}] must be a whole number >= 0")
            elif value < 0:
                problems.append(f"{name}[{key}] must be >= 0")
    statuses: object = faults.server_error_statuses
    if (
        isinstance(statuses, list | tuple)
        and statuses
        and all(isinstance(code, int) and 500 <= code <= 599 for code in statuses)
    ):
        faults.server_error_statuses = tuple(statuses)
    else:
        problems.append("server_error_statuses must be a non-empty list of codes within 500..599")
    if not _is_number(faults.job_error_rate) or not 0 <= faults.job_error_rate <= 1:
        problems.append("job_error_rate must be within 0..1")
    if not isinstance(faults.job_error_code, int) or not 400 <= faults.job_error_code <= 599:
        problems.append("job_error_code must be within 400..599")
    if not isinstance(faults.retry_after_seconds, int) or faults.retry_after_seconds < 0:
        problems.append("retry_after_seconds must be a whole number >= 0")
    if faults.max_upload_bytes is not None and (
        not isinstance(faults.max_upload_bytes, int) or faults.max_upload_bytes < 0
    ):
        problems.append("max_upload_bytes must be null or a whole number >= 0")
    if faults.down_status is not None and (
        not isinstance(faults.down_status, int) or not 400 <= faults.down_status <= 599
    ):
        problems.append("down_status must be null (reset) or a code within 400..599")
    for name in ("server_error_after_effect", "retry_after_http_date", "down", "hold_jobs"):
        if not isinstance(getattr(faults, name), bool):
            problems.append(f"{name} must be true or false")
    if problems:
        raise ValueError("; ".join(problems))
    for name in _ROUTE_COUNTS:
        setattr(faults, name, {key: int(value) for key, value in getattr(faults, name).items()})
    return faults


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class FaultBoard:
    """The current switches and the seeded random source every fault decision draws from."""

    def __init__(self, faults: Faults, seed: int, routes: frozenset[str] | None = None) -> None:
        self._lock = threading.Lock()
        self._routes = routes
        self._faults = checked_faults(faults, routes)
        self._random = random.Random(seed)

    def snapshot(self) -> Faults:
        """Return a copy of the current switches."""
        with self._lock:
            return copy.deepcopy(self._faults)

    def as_json(self) -> dict[str, Any]:
        """Return the current switches as a JSON-ready dict."""
        return dataclasses.asdict(self.snapshot())

    def change(self, changes: dict[str, object]) -> Faults:
        """Apply `changes` (switch name -> new value) atomically; raise ValueError for unknown names or
        bad values, leaving the switches untouched."""
        known = {item.name for item in dataclasses.fields(Faults)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError("unknown fault switch(es): " + ", ".join(unknown))
        with self._lock:
            updated = checked_faults(dataclasses.replace(self._faults, **changes),  # type: ignore[arg-type]
                                     self._routes)
            self._faults = updated
            return copy.deepcopy(updated)

    def down(self) -> tuple[bool, int | None]:
        """Return (is the API down, status to answer or None for a reset)."""
        with self._lock:
            return self._faults.down, self._faults.down_status

    def rate_limited(self, route: str) -> tuple[int, bool] | None:
        """Consume one 429 of the route's burst; return (retry-after seconds, as HTTP date) or None."""
        with self._lock:
            if not self._consume(self._faults.rate_limit_next, route):
                return None
            return self._faults.retry_after_seconds, self._faults.retry_after_http_date

    def server_error(self, route: str) -> tuple[int, bool] | None:
        """Decide whether this request fails with a 5xx; return (status, after the effect) or None."""
        with self._lock:
            faults = self._faults
            if self._consume(faults.server_error_next, route) or self._draw(faults.server_error_rate, route):
                return self._random.choice(faults.server_error_statuses), faults.server_error_after_effect
            return None

    def drop(self, route: str) -> bool:
        """Decide whether to reset this request's connection instead of answering."""
        with self._lock:
            return self._consume(self._faults.drop_next, route) or self._draw(self._faults.drop_rate, route)

    def delay(self, route: str) -> float:
        """Return how long to wait before answering on this route."""
        with self._lock:
            return float(_lookup(self._faults.delay_seconds, route, 0.0))

    def truncate(self, route: str) -> bool:
        """Decide whether to cut this response's JSON body short."""
        with self._lock:
            return self._draw(self._faults.truncate_rate, route)

    def job_error(self) -> int | None:
        """Decide whether a finishing job ends in error; return its error_code or None."""
        with self._lock:
            if self._faults.job_error_rate and self._random.random() < self._faults.job_error_rate:
                return self._faults.job_error_code
            return None

    def upload_limit(self, default: int) -> int:
        """Return the upload size limit in bytes in force now."""
        with self._lock:
            limit = self._faults.max_upload_bytes
            return default if limit is None else limit

    def holding_jobs(self) -> bool:
        """Return True while processing jobs must not finish."""
        with self._lock:
            return self._faults.hold_jobs

    def _draw(self, rates: dict[str, float], route: str) -> bool:
        rate = _lookup(rates, route, 0.0)
        return bool(rate) and self._random.random() < rate

    @staticmethod
    def _consume(counts: dict[str, int], route: str) -> bool:
        for key in (route, ANY_ROUTE):
            if counts.get(key, 0) > 0:
                counts[key] -= 1
                return True
        return False


def _lookup(mapping: dict[str, Any], route: str, default: Any) -> Any:
    if route in mapping:
        return mapping[route]
    return mapping.get(ANY_ROUTE, default)


class Counters:
    """Named counts (requests by route and status, jobs created, bytes uploaded, deliveries)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, name: str, amount: int = 1) -> None:
        """Add `amount` to the count called `name`."""
        with self._lock:
            self._counts[name] += amount

    def snapshot(self) -> dict[str, int]:
        """Return a copy of every count, sorted by name."""
        with self._lock:
            return dict(sorted(self._counts.items()))

    def reset(self) -> None:
        """Set every count back to zero."""
        with self._lock:
            self._counts.clear()


class RequestLog:
    """Every API request the emulator answered, in order: when it arrived and when its answer was about to
    be written (wall-clock seconds since the epoch), method, route key, the job id in the path (when any) and the
    status ("dropped" for a reset). A test-only inspection aid: it lets a test or benchmark check *when*
    requests came, which counters cannot show. Keeps the newest `limit` entries."""

    def __init__(self, limit: int = 200_000) -> None:
        self._lock = threading.Lock()
        self._limit = limit
        self._entries: list[dict[str, Any]] = []

    def add(self, entry: dict[str, Any]) -> None:
        """Append one request's entry (dropping the oldest beyond the limit)."""
        with self._lock:
            self._entries.append(entry)
            if len(self._entries) > self._limit:
                del self._entries[: len(self._entries) - self._limit]

    def snapshot(self) -> list[dict[str, Any]]:
        """Return a copy of every entry, oldest first."""
        with self._lock:
            return [dict(entry) for entry in self._entries]

    def reset(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()
