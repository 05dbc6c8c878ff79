"""Where a long recording is cut: the pure parts of media/split.py (budget, even guess, quiet point choice)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transcribed.media.split import (
    Part,
    Silence,
    choose_cut,
    even_parts,
    parse_silences,
    part_budget,
    parts_from_cuts,
)


@pytest.mark.parametrize(("limit", "budget"), [(8100.0, 8040.0), (60.0, 59.4), (10.0, 9.75), (0.2, 0.1)])
def test_the_budget_keeps_a_margin_under_the_limit(limit: float, budget: float) -> None:
    assert part_budget(limit) == pytest.approx(budget)


@given(duration=st.floats(1.0, 100_000.0), limit=st.floats(60.0, 20_000.0))
def test_even_parts_cover_the_source_within_the_budget(duration: float, limit: float) -> None:
    parts = even_parts(duration, limit)
    assert parts[0].start == 0.0
    assert parts[-1].end == duration
    assert all(a.end == b.start for a, b in itertools.pairwise(parts))
    assert [p.index for p in parts] == list(range(len(parts)))
    assert all(p.duration <= part_budget(limit) + 0.001 for p in parts)
    assert len(parts) == 1 or duration > part_budget(limit)


def test_silences_are_read_from_the_metadata_lines_only() -> None:
    text = ("frame:10 pts:1 pts_time:0.1\nlavfi.silence_start=2.5\n"
            "frame:20 pts:2 pts_time:3.9\nlavfi.silence_end=4.0\nlavfi.silence_duration=1.5\n"
            "silence_start: 99\n"   # a log line (or a file name) is never read as a silence
            "lavfi.silence_start=-0.02\nlavfi.silence_end=0.5\n"
            "lavfi.silence_start=110.0\n")
    assert parse_silences(text, 100.0, 220.0) == [Silence(102.5, 104.0), Silence(100.0, 100.5),
                                                   Silence(210.0, 220.0)]


@pytest.mark.parametrize(("silences", "cut"), [
    ([], 100.0),                                                            # nothing quiet: the even point
    ([Silence(90.0, 90.2)], 90.1),                                          # the only pause
    ([Silence(70.0, 75.0), Silence(98.0, 99.0)], 98.5),                     # long enough: the nearest wins
    ([Silence(95.0, 95.4), Silence(120.0, 120.9)], 120.45),                 # the longer of two short pauses
    ([Silence(30.0, 61.0)], 60.5),                                          # clipped to the window
    ([Silence(10.0, 20.0), Silence(200.0, 210.0)], 100.0),                  # both outside the window
])
def test_the_cut_goes_in_the_best_pause_inside_the_window(silences: list[Silence], cut: float) -> None:
    assert choose_cut(silences, 60.0, 140.0, 100.0) == pytest.approx(cut)


def test_parts_run_between_the_cuts() -> None:
    assert parts_from_cuts(300.0, [200.5, 99.0]) == (Part(0, 0.0, 99.0), Part(1, 99.0, 200.5),
                                                      Part(2, 200.5, 300.0))
    assert parts_from_cuts(30.0, []) == (Part(0, 0.0, 30.0),)
