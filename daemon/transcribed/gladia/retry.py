"""Retry policy, pure: which failures to retry and how long to wait (RELIABILITY.md).

Full-jitter exponential backoff U(0, min(cap, base * 2**n)), Retry-After honoured up to a cap, bounded
attempts and a deadline per call. Polling intervals grow x1.5 from ~1 s to ~30 s.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
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
