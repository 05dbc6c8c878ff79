"""The refused-key check schedule (pure) and the pause's one line (issue 12, part 1)."""

from __future__ import annotations

import pytest

from transcribed.pipeline.keycheck import KEY_CHECK_CAP_SECONDS, Pause, key_check_delay


@pytest.mark.parametrize(("checks", "first", "jitter", "expected"), [
    (0, 30.0, 0.5, 30.0),       # about 30 s at first
    (1, 30.0, 0.5, 60.0),       # then doubling
    (2, 30.0, 0.5, 120.0),
    (4, 30.0, 0.5, 480.0),
    (5, 30.0, 0.5, 600.0),      # capped at 10 minutes
    (60, 30.0, 0.5, 600.0),     # however long the pause
    (0, 30.0, 0.0, 24.0),       # jitter spreads daemons sharing a key over 0.8x..1.2x
    (0, 30.0, 1.0, 36.0),
    (9, 30.0, 1.0, 720.0),
    (0, 0.5, 0.5, 0.5),         # a small configured first interval (tests)
    (3, 0.5, 0.5, 4.0),
    (0, 900.0, 0.5, 900.0),     # a first interval above the cap is kept as it is
    (-1, 30.0, 0.5, 30.0),      # nonsense in, the first interval out
    (0, 30.0, 7.0, 36.0),       # jitter outside [0, 1] is clamped
])
def test_key_check_schedule(checks: int, first: float, jitter: float, expected: float) -> None:
    assert key_check_delay(checks, first, jitter) == pytest.approx(expected)


def test_the_schedule_grows_and_never_exceeds_the_cap_with_jitter() -> None:
    delays = [key_check_delay(n, 30.0, 0.5) for n in range(12)]
    assert delays == sorted(delays)
    assert max(key_check_delay(n, 30.0, 1.0) for n in range(40)) == pytest.approx(KEY_CHECK_CAP_SECONDS * 1.2)


def test_the_pause_says_since_when_and_when_the_next_check_is() -> None:
    pause = Pause("key_refused", 1_700_000_000.0, 1_700_000_030.0)
    line = pause.describe()
    assert line.startswith("paused: Gladia refused the key since ")
    assert "; next check at " in line
    assert pause.as_json()["reason"] == "key_refused"
