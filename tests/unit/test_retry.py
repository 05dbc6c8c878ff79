"""Retry policy (pure): what to retry, how long to wait."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from itertools import islice

import pytest

from transcribed.gladia.retry import RetryPolicy, is_transient_status, parse_retry_after, poll_deadline, poll_intervals

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 520])
def test_transient_statuses(status: int) -> None:
    assert is_transient_status(status)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422, 501])
def test_permanent_statuses(status: int) -> None:
    assert not is_transient_status(status)


@pytest.mark.parametrize(("header", "expected"), [
    ("5", 5.0), ("0", 0.0), ("2.5", 2.5), ("100000", 300.0), ("-3", 0.0), ("soon", None), ("", None), (None, None),
    (format_datetime(NOW + timedelta(seconds=42), usegmt=True), 42.0),
    (format_datetime(NOW - timedelta(seconds=42), usegmt=True), 0.0),
])
def test_retry_after_in_seconds_or_http_date(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, NOW) == expected


def test_full_jitter_stays_within_the_exponential_cap() -> None:
    policy = RetryPolicy()
    rng = random.Random(1)
    for attempt in range(12):
        delays = [policy.backoff(attempt, rng) for _ in range(200)]
        assert all(0 <= d <= min(60, 2 ** attempt) for d in delays)
        assert max(delays) > 0.5 * min(60, 2 ** attempt)   # full jitter spreads over the whole range


def test_attempts_and_deadline_bound_a_call() -> None:
    policy = RetryPolicy(max_attempts=3, deadline=100)
    rng = random.Random(2)
    assert policy.next_delay(1, 0, None, rng) is not None
    assert policy.next_delay(3, 0, None, rng) is None
    assert policy.next_delay(1, 99.9, 5.0, rng) is None


def test_retry_after_is_honoured_up_to_its_cap() -> None:
    policy = RetryPolicy(deadline=1000)
    rng = random.Random(3)
    assert policy.next_delay(1, 0, 30.0, rng) == 30.0
    assert policy.next_delay(1, 0, 900.0, rng) == 300.0


def test_polling_grows_to_a_cap_and_the_deadline_scales_with_duration() -> None:
    assert list(islice(poll_intervals(1.0, 1.5, 30.0), 12)) == pytest.approx(
        [1.0, 1.5, 2.25, 3.375, 5.0625, 7.59375, 11.390625, 17.0859375, 25.62890625, 30.0, 30.0, 30.0])
    assert poll_deadline(None) == 900.0
    assert poll_deadline(3600.0) == 10800.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_circuit_opens_after_repeated_failures_and_allows_one_probe_a_minute() -> None:
    from transcribed.gladia.retry import CircuitBreaker

    clock = FakeClock()
    breaker = CircuitBreaker(threshold=3, probe_interval=60.0, clock=clock)
    assert [breaker.failure() for _ in range(3)] == [False, False, True]
    assert breaker.is_open
    sent = 0
    for _ in range(600):              # ten minutes of callers trying every second
        clock.now += 1.0
        sent += breaker.allow()
    assert 9 <= sent <= 11           # about one request a minute while down
    assert breaker.success() is True and not breaker.is_open and breaker.allow()
