"""Complete-file decisions over observations in time (the clock is just numbers here)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transcribed.inbox.readiness import (
    Decision,
    SettlePolicy,
    Settling,
    Verdict,
    decide,
    observe,
    settled_by_mtime,
)

POLICY = SettlePolicy(settle_seconds=5.0, timeout_seconds=60.0, confirm_seconds=0.1)
V1 = (1, 10, 100, 1_000)
V2 = (1, 10, 200, 2_000)


def run(observations: list[tuple[float, tuple[int, int, int, int], str]]) -> tuple[Settling, Decision]:
    """Feed (time, version, event) observations ("" | "fast" | "metadata"); return the last state/decision."""
    state: Settling | None = None
    decision = Decision(Verdict.WAIT)
    for now, version, event in observations:
        state = observe(state, version, now, fast=event == "fast", metadata_only=event == "metadata")
        decision = decide(state, now, POLICY)
    assert state is not None
    return state, decision


def test_a_new_file_waits_for_the_settle_time() -> None:
    assert run([(0.0, V1, "")])[1] == Decision(Verdict.WAIT, 5.0)


def test_a_quiet_file_is_ready_after_the_settle_time() -> None:
    assert run([(0.0, V1, ""), (5.0, V1, "")])[1].verdict is Verdict.READY


def test_a_growing_file_is_never_ready() -> None:
    observations = [(float(t), (1, 10, 100 * t, t), "") for t in range(0, 59, 5)]
    _, decision = run(observations)
    assert decision.verdict is Verdict.WAIT


def test_a_change_restarts_the_quiet_period() -> None:
    _, decision = run([(0.0, V1, ""), (4.0, V2, ""), (5.0, V2, "")])
    assert decision == Decision(Verdict.WAIT, 9.0)
    assert run([(0.0, V1, ""), (4.0, V2, ""), (9.0, V2, "")])[1].verdict is Verdict.READY


def test_a_file_still_changing_at_the_timeout_is_reported() -> None:
    observations = [(float(t), (1, 10, 100 + t, t), "") for t in range(0, 61, 4)]
    observations.append((60.0, (1, 10, 999, 999), ""))
    assert run(observations)[1].verdict is Verdict.TIMED_OUT


def test_close_after_write_is_ready_after_a_confirming_look() -> None:
    _, decision = run([(0.0, V1, ""), (1.0, V2, "fast")])
    assert decision == Decision(Verdict.WAIT, pytest.approx(1.1))
    assert run([(0.0, V1, ""), (1.0, V2, "fast"), (1.1, V2, "")])[1].verdict is Verdict.READY


def test_a_reopened_file_falls_back_to_settling() -> None:
    state, decision = run([(0.0, V1, "fast"), (0.1, V2, "")])
    assert state.fast_since is None
    assert decision == Decision(Verdict.WAIT, pytest.approx(5.1))


def test_metadata_changes_after_a_close_stay_on_the_fast_path() -> None:
    # cp -p: close, then utime sets the old mtime, then chmod.
    restored = (1, 10, 100, 5)
    _, decision = run([(0.0, V1, "fast"), (0.05, restored, "metadata")])
    assert decision == Decision(Verdict.WAIT, pytest.approx(0.15))
    assert run([(0.0, V1, "fast"), (0.05, restored, "metadata"), (0.16, restored, "")])[1].verdict \
        is Verdict.READY


def test_metadata_changes_alone_do_not_start_the_fast_path() -> None:
    assert run([(0.0, V1, ""), (1.0, V2, "metadata")])[1] == Decision(Verdict.WAIT, 6.0)


def test_an_empty_file_never_takes_the_fast_path() -> None:
    empty = (1, 10, 0, 1)
    assert run([(0.0, empty, "fast"), (0.1, empty, "")])[1] == Decision(Verdict.WAIT, 5.0)
    assert run([(0.0, empty, "fast"), (5.0, empty, "")])[1].verdict is Verdict.READY


def test_a_move_event_for_a_known_version_starts_the_fast_path() -> None:
    _, decision = run([(0.0, V1, ""), (3.0, V1, "fast")])
    assert decision == Decision(Verdict.WAIT, pytest.approx(3.1))


def test_the_confirmation_never_takes_longer_than_settling() -> None:
    quick = SettlePolicy(settle_seconds=0.05, timeout_seconds=10.0, confirm_seconds=0.1)
    state = observe(None, V1, 0.0, fast=True)
    assert decide(state, 0.0, quick) == Decision(Verdict.WAIT, 0.05)


def test_one_off_scans_decide_by_mtime() -> None:
    assert settled_by_mtime(10, 11)
    assert not settled_by_mtime(11, 11)
    assert settled_by_mtime(10**20, None)


@given(st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 3), st.sampled_from(["", "fast", "metadata"])),
                min_size=1, max_size=40))
def test_ready_only_after_an_unchanged_quiet_period(steps: list[tuple[float, int, str]]) -> None:
    """Whatever the events, READY means: the version seen now was first seen at least the required
    quiet time ago, and no observation in between differed."""
    now = 0.0
    state: Settling | None = None
    history: list[tuple[float, tuple[int, int, int, int]]] = []
    for gap, size, event in steps:
        now += gap * 3
        version = (1, 1, size, size)
        state = observe(state, version, now, fast=event == "fast", metadata_only=event == "metadata")
        history.append((now, version))
        decision = decide(state, now, POLICY)
        if decision.verdict is Verdict.READY:
            same_since = now
            for when, seen in reversed(history):
                if seen != version:
                    break
                same_since = when
            assert now - same_since >= min(POLICY.confirm_seconds, POLICY.settle_seconds) - 1e-9
            if size == 0:
                assert now - same_since >= POLICY.settle_seconds - 1e-9
        elif decision.verdict is Verdict.WAIT:
            assert decision.due is not None and decision.due > now
