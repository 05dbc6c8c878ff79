"""The hub workers wait on: tokens, notices, the order in which they may come, and waking waiters."""

from __future__ import annotations

import re
import threading

import pytest

from transcribed.config import CallbackConfig
from transcribed.receiver.hub import EARLY_WEBHOOK_SECONDS, ISSUED_TOKEN_SECONDS, CallbackHub, Verdict

GENEROUS = 30.0
CONFIG = CallbackConfig(enabled=True, public_url="https://host.example/transcribed")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hub(clock: Clock) -> CallbackHub:
    return CallbackHub(CONFIG, clock=clock)


def test_urls_and_tokens(hub: CallbackHub) -> None:
    token = hub.new_token()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)
    assert hub.new_token() != token
    assert hub.callback_url(token) == f"https://host.example/transcribed/callback/{token}"
    assert hub.webhook_url == "https://host.example/transcribed/webhook"
    assert token not in repr(hub)


def test_a_callback_wakes_the_job_once_and_is_stamped(hub: CallbackHub, clock: Clock) -> None:
    token = hub.new_token()
    hub.expect("job-1", token)
    assert not hub.wait("job-1", 0) and hub.notified_at("job-1") is None
    clock.now = 1234.5
    assert hub.receive_callback(token, "job-1", finished=True) is Verdict.ACCEPTED
    assert hub.wait("job-1", GENEROUS)
    assert not hub.wait("job-1", 0)  # taken: a True never repeats without a new notice
    assert hub.notified_at("job-1") == 1234.5
    hub.forget("job-1")
    assert hub.notified_at("job-1") is None and not hub.wait("job-1", 0)
    assert hub.receive_callback(token, "job-1", finished=True) is Verdict.UNKNOWN


def test_a_waiter_in_another_thread_is_woken(hub: CallbackHub) -> None:
    token = hub.new_token()
    hub.expect("job-1", token)
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(hub.wait("job-1", GENEROUS)))
    waiter.start()
    hub.receive_callback(token, "job-1", finished=True)
    waiter.join()
    assert results == [True]


def test_tokens_are_checked_against_the_named_job(hub: CallbackHub) -> None:
    first, second = hub.new_token(), hub.new_token()
    hub.expect("job-1", first)
    hub.expect("job-2", second)
    assert hub.receive_callback(second, "job-1", finished=True) is Verdict.WRONG_TOKEN
    assert hub.receive_callback("x" * 43, "job-1", finished=True) is Verdict.WRONG_TOKEN
    assert hub.receive_callback(first, "job-9", finished=True) is Verdict.UNKNOWN
    assert hub.receive_callback("x" * 43, None, finished=True) is Verdict.UNKNOWN
    assert not hub.wait("job-1", 0) and not hub.wait("job-2", 0)
    assert hub.knows_token(first) and not hub.knows_token("x" * 43)


def test_a_body_without_an_id_is_matched_by_its_token(hub: CallbackHub) -> None:
    token = hub.new_token()
    hub.expect("job-1", token)
    assert hub.receive_callback(token, None, finished=True) is Verdict.ACCEPTED
    assert hub.wait("job-1", GENEROUS)


def test_an_event_that_does_not_end_the_job_wakes_nobody(hub: CallbackHub) -> None:
    token = hub.new_token()
    hub.expect("job-1", token)
    assert hub.receive_callback(token, "job-1", finished=False) is Verdict.ACCEPTED
    assert hub.receive_webhook("job-1", finished=False)
    assert not hub.wait("job-1", 0) and hub.notified_at("job-1") is None


def test_a_callback_before_expect_still_counts(hub: CallbackHub, clock: Clock) -> None:
    token = hub.new_token()
    assert hub.knows_token(token)
    clock.now = 1001.0
    assert hub.receive_callback(token, "job-1", finished=True) is Verdict.ACCEPTED
    clock.now = 1002.0
    hub.expect("job-1", token)
    assert hub.notified_at("job-1") == 1001.0
    assert hub.wait("job-1", 0)


def test_an_early_callback_naming_another_job_does_not_count(hub: CallbackHub) -> None:
    token = hub.new_token()
    hub.receive_callback(token, "job-2", finished=True)
    hub.expect("job-1", token)
    assert not hub.wait("job-1", 0)


def test_a_webhook_before_expect_counts_for_a_while(hub: CallbackHub, clock: Clock) -> None:
    assert not hub.receive_webhook("job-1", finished=True)   # unknown: acknowledged, kept aside
    assert not hub.receive_webhook("job-2", finished=True)
    hub.expect("job-1", hub.new_token())
    assert hub.wait("job-1", 0)
    clock.now += EARLY_WEBHOOK_SECONDS + 1
    hub.expect("job-2", hub.new_token())
    assert not hub.wait("job-2", 0)


def test_webhooks_wake_awaited_jobs(hub: CallbackHub, clock: Clock) -> None:
    hub.expect("job-1", hub.new_token())
    clock.now = 1500.0
    assert hub.receive_webhook("job-1", finished=True)
    assert hub.wait("job-1", GENEROUS) and hub.notified_at("job-1") == 1500.0


def test_expect_again(hub: CallbackHub) -> None:
    token = hub.new_token()
    hub.expect("job-1", token)
    hub.receive_callback(token, "job-1", finished=True)
    hub.expect("job-1", token)            # same token: the notice stays
    assert hub.wait("job-1", 0)
    hub.receive_callback(token, "job-1", finished=True)
    fresh = hub.new_token()
    hub.expect("job-1", fresh)            # another token: a fresh start, the old token is dead
    assert not hub.wait("job-1", 0)
    assert hub.receive_callback(token, "job-1", finished=True) is Verdict.WRONG_TOKEN
    assert not hub.knows_token(token)
    assert hub.receive_callback(fresh, None, finished=True) is Verdict.ACCEPTED


def test_unused_tokens_expire(hub: CallbackHub, clock: Clock) -> None:
    token = hub.new_token()
    clock.now += ISSUED_TOKEN_SECONDS + 1
    hub.new_token()
    assert not hub.knows_token(token)
    assert hub.receive_callback(token, "job-1", finished=True) is Verdict.UNKNOWN


def test_close_wakes_every_waiter(hub: CallbackHub) -> None:
    hub.expect("job-1", hub.new_token())
    results: list[bool] = []
    waiters = [threading.Thread(target=lambda: results.append(hub.wait("job-1", GENEROUS))) for _ in range(3)]
    for waiter in waiters:
        waiter.start()
    hub.close()
    for waiter in waiters:
        waiter.join()
    assert results == [False] * 3
    assert not hub.wait("job-1", GENEROUS)


def test_forget_wakes_a_waiter(hub: CallbackHub) -> None:
    hub.expect("job-1", hub.new_token())
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(hub.wait("job-1", GENEROUS)))
    waiter.start()
    hub.forget("job-1")
    waiter.join()
    assert results == [False]
