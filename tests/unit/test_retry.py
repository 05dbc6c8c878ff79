"""Retry policy (pure): what to retry, how long to wait."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from itertools import islice

import pytest

from transcribed.gladia.retry import (
    RetryPolicy,
    RouteGate,
    hold_seconds,
    is_transient_status,
    parse_retry_after,
    poll_deadline,
    poll_intervals,
    route_key,
)

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


@pytest.mark.parametrize(("method", "path", "expected"), [
    ("GET", "/v2/pre-recorded/3f1c-aa", "GET /v2/pre-recorded/{id}"),
    ("GET", "/v2/pre-recorded/other-id/", "GET /v2/pre-recorded/{id}"),
    ("GET", "/v2/pre-recorded", "GET /v2/pre-recorded"),
    ("post", "/v2/pre-recorded", "POST /v2/pre-recorded"),
    ("POST", "/v2/upload", "POST /v2/upload"),
    ("DELETE", "/v2/pre-recorded/abc", "DELETE /v2/pre-recorded/{id}"),
    ("GET", "/v2/pre-recorded/abc/file", "GET /v2/pre-recorded/{id}/{id}"),
    ("GET", "/proxy/gladia/v2/transcription/abc", "GET /v2/transcription/{id}"),
    ("GET", "/health", "GET /health"),
])
def test_a_route_is_the_method_and_path_template_never_the_job_id(method: str, path: str, expected: str) -> None:
    assert route_key(method, path) == expected


@pytest.mark.parametrize(("status", "retry_after", "expected"), [
    (429, 2.0, 2.0),
    (429, None, 1.0),          # a 429 always holds the route, briefly when it does not say for how long
    (429, 0.0, 0.0),
    (429, 1000.0, 300.0),      # capped as every Retry-After
    (503, 5.0, 5.0),
    (503, None, None),         # a plain 503 is an outage (the circuit breaker's business), not a "not before"
    (500, 5.0, None),
    (502, 5.0, None),
    (200, 5.0, None),
    (404, None, None),
])
def test_what_holds_a_whole_route(status: int, retry_after: float | None, expected: float | None) -> None:
    assert hold_seconds(status, retry_after) == expected


def test_the_gate_holds_one_route_for_every_caller_and_reports_each_episode_once() -> None:
    now = [100.0]
    gate = RouteGate(clock=lambda: now[0])
    get, listing = "GET /v2/pre-recorded/{id}", "GET /v2/pre-recorded"
    assert gate.remaining(get) == 0.0
    assert gate.hold(get, 2.0) is True               # a new episode: log it
    assert gate.hold(get, 1.0) is False              # an answer in flight meanwhile: same episode, end kept
    assert gate.remaining(get) == 2.0 and gate.remaining(listing) == 0.0
    now[0] = 101.5
    assert gate.hold(get, 3.0) is False              # a later end extends the same episode
    assert gate.remaining(get) == 3.0
    now[0] = 104.5
    assert gate.remaining(get) == 0.0
    assert gate.hold(get, 2.0) is True               # the route had opened: a new episode
    assert gate.hold(listing, 0.0) is False and gate.remaining(listing) == 0.0
