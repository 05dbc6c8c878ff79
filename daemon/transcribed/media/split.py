"""Splitting long media into parts within Gladia's limits, cut at quiet points.

The pure core: `part_budget` (the longest part allowed under a limit, less a safety margin), `even_parts`
(the first guess: equal parts), `choose_cut` (the quiet point to cut at, from ffmpeg's silences in a window)
and `parts_from_cuts`. The shell: `split_points` runs ffmpeg's silencedetect on a short window around each
even cut position (never over the whole file: a 3-hour film costs a few minutes of audio decoding).

Stdlib, errors and config only.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from transcribed.config import MediaConfig
from transcribed.errors import MediaError
from transcribed.media.probe import media_argument, one_line, run_tool

__all__ = [
    "Part",
    "Silence",
    "choose_cut",
    "even_parts",
    "parse_silences",
    "part_budget",
    "parts_from_cuts",
    "split_points",
]

# Quiet means 35 dB under full scale for 0.3 s: below room tone of most recordings, and a pause between
# sentences lasts longer than that. A cut inside such a pause never halves a word.
SILENCE_NOISE_DB = -35
SILENCE_SECONDS = 0.3
# How far from the even cut position a quiet point is looked for (each side).
SEARCH_SECONDS = 60.0
# A pause this long is a safe cut (between sentences or speakers): among such pauses the nearest to the even
# position wins, so parts stay balanced.
SAFE_PAUSE_SECONDS = 1.0


@dataclass(frozen=True)
class Part:
    """One part of a source, in seconds of the source: [start, end). `index` counts from 0."""

    index: int
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Silence:
    """A quiet stretch, in seconds of the source."""

    start: float
    end: float


def part_budget(max_seconds: float) -> float:
    """The longest part allowed under a limit of `max_seconds`: the limit less a margin (1 %, from 0.25 s to
    60 s) so that Gladia's own measure of an extract (codec padding, container rounding) stays within it."""
    margin = min(60.0, max(0.25, max_seconds * 0.01))
    return max(max_seconds - margin, max_seconds / 2)


def even_parts(duration: float, max_seconds: float) -> tuple[Part, ...]:
    """Equal parts of a `duration`-second source, each within part_budget(max_seconds); one part when it fits."""
    count = max(1, math.ceil(duration / part_budget(max_seconds)))
    length = duration / count
    return tuple(Part(i, round(i * length, 3), duration if i == count - 1 else round((i + 1) * length, 3))
                 for i in range(count))


def parse_silences(text: str, offset: float, window_end: float) -> list[Silence]:
    """Given the lines ffmpeg's `ametadata=mode=print` wrote after `silencedetect` over a window that starts
    at `offset` seconds of the source, return the silences in source seconds. A silence still open at the
    end of the window ends at `window_end`."""
    silences: list[Silence] = []
    start: float | None = None
    for line in text.splitlines():
        key, _, value = line.strip().partition("=")
        try:
            seconds = float(value)
        except ValueError:
            continue
        if key == "lavfi.silence_start":
            start = max(0.0, seconds) + offset
        elif key == "lavfi.silence_end" and start is not None:
            silences.append(Silence(start, seconds + offset))
            start = None
    if start is not None and start < window_end:
        silences.append(Silence(start, window_end))
    return silences


def choose_cut(silences: Sequence[Silence], low: float, high: float, ideal: float) -> float:
    """Where to cut, between `low` and `high`: the middle of the longest silence there (its part inside the
    bounds; every silence of SAFE_PAUSE_SECONDS or more counts as equally long, and the nearest to `ideal`
    wins among equals), or `ideal` when there is none."""
    best: tuple[float, float, float] | None = None
    for silence in silences:
        start, end = max(silence.start, low), min(silence.end, high)
        if end <= start:
            continue
        middle = (start + end) / 2
        key = (min(end - start, SAFE_PAUSE_SECONDS), -abs(middle - ideal), middle)
        if best is None or key[:2] > best[:2]:
            best = key
    return round(best[2], 3) if best is not None else ideal


def parts_from_cuts(duration: float, cuts: Sequence[float]) -> tuple[Part, ...]:
    """The parts between consecutive cut positions (sorted), from 0 to `duration`."""
    bounds = [0.0, *sorted(cuts), duration]
    return tuple(Part(i, bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1))


def split_points(path: Path, duration: float, max_seconds: float, config: MediaConfig, ffmpeg: str,
                 stop: threading.Event | None = None, *, stream: int | None = None) -> tuple[Part, ...]:
    """Given a source of `duration` seconds, return parts each at most part_budget(max_seconds) long, cut
    at quiet points near the even cut positions (ffmpeg silencedetect on `stream`, or the default audio).

    The window searched around each even position is bounded so that every part stays within the budget
    whatever is chosen. Raise Stopped when `stop` is set, MediaError when ffmpeg cannot decode the
    source, OSError when it cannot be run.
    """
    guess = even_parts(duration, max_seconds)
    if len(guess) == 1:
        return guess
    budget = part_budget(max_seconds)
    length = duration / len(guess)
    # Each cut moves at most `reach` from its even position, so a part is at most length + 2 * reach.
    reach = min(SEARCH_SECONDS, (budget - length) / 2, length / 4)
    cuts: list[float] = []
    for part in guess[1:]:
        ideal = part.start
        if reach < SILENCE_SECONDS * 2:
            cuts.append(ideal)
            continue
        low, high = ideal - reach, ideal + reach
        silences = _silences(path, low, high, ffmpeg, stop, stream)
        cuts.append(choose_cut(silences, low, high, ideal))
    return parts_from_cuts(duration, cuts)


def _silences(path: Path, low: float, high: float, ffmpeg: str, stop: threading.Event | None,
              stream: int | None) -> list[Silence]:
    argument = media_argument(path)
    argv = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error",
            "-ss", f"{low:.3f}", "-t", f"{high - low:.3f}", "-i", argument,
            *(["-map", f"0:{stream}"] if stream is not None else ["-vn", "-sn", "-dn"]),
            # The filter writes only its metadata to stdout (pipe:1), so nothing else ffmpeg prints (such as
            # a file name holding a newline) can be mistaken for a silence.
            "-af", f"silencedetect=noise={SILENCE_NOISE_DB}dB:duration={SILENCE_SECONDS},"
                   "ametadata=mode=print:file='pipe\\:1'",
            "-f", "null", "-"]
    status, out, err = run_tool(argv, stop=stop)
    if status != 0:
        if not path.exists():
            raise FileNotFoundError(f"the file is gone: {path.name!r}")
        raise MediaError("cannot be decoded: " + one_line(err, argument, fallback=f"ffmpeg exited with {status}"))
    return parse_silences(out.decode("utf-8", "replace"), low, high)
