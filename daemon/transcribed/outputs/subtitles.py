"""Subtitle cues: pure functions from a Transcript to valid SubRip (srt) and WebVTT (vtt) text.

Two sources of cues, one set of rules. Gladia's own subtitle file for the format is used when the job
has one (its timings honour the request's subtitles_config), after normalising it: timestamps re-read
whatever the separator (one real capture used "." in srt), cues renumbered, empty ones dropped. Otherwise
cues are built from utterances and words within `SubtitleLimits`, each cue from one utterance (so one
speaker), split at word boundaries. Either way the output has no zero-length and no overlapping cue,
timestamps count hours past 99 minutes, and vtt carries `<v Speaker N>` when the transcript is diarized.

Times are handled in integer milliseconds so that what is checked is exactly what is printed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from transcribed.gladia.result import Transcript, Utterance

__all__ = ["Cue", "SubtitleLimits", "join_words", "render_srt", "render_vtt", "speaker_labeler"]


@dataclass(frozen=True)
class SubtitleLimits:
    """How cues rendered from words are cut (Gladia's own subtitle files are not re-cut).

    Defaults: 42 characters per row and 2 rows per caption are the common broadcast and streaming
    guideline (BBC, Netflix) and what most players display without wrapping; 7 s is the usual longest
    caption (Netflix) and sits inside Gladia's accepted 1-30 s; 1 s is long enough to read a short word,
    and a cue is only lengthened to it when the next cue leaves room.
    """

    maximum_characters_per_row: int = 42
    maximum_rows_per_caption: int = 2
    maximum_duration: float = 7.0
    minimum_duration: float = 1.0

    @classmethod
    def from_request(cls, request_params: Mapping[str, Any] | None) -> SubtitleLimits:
        """Given a create request (config transcription.request) or a job's `request_params` echo, return
        its `subtitles_config` limits. A missing or out-of-range value (per Gladia's spec) keeps the default.
        """
        config = request_params.get("subtitles_config") if isinstance(request_params, Mapping) else None
        if not isinstance(config, Mapping):
            return cls()
        defaults = cls()
        characters = _bounded(config.get("maximum_characters_per_row"), 1, 10_000, integer=True)
        rows = _bounded(config.get("maximum_rows_per_caption"), 1, 5, integer=True)
        longest = _bounded(config.get("maximum_duration"), 1, 30, integer=False)
        shortest = _bounded(config.get("minimum_duration"), 0, 30, integer=False)
        maximum_duration = defaults.maximum_duration if longest is None else longest
        minimum_duration = defaults.minimum_duration if shortest is None else shortest
        return cls(
            maximum_characters_per_row=(
                defaults.maximum_characters_per_row if characters is None else int(characters)
            ),
            maximum_rows_per_caption=defaults.maximum_rows_per_caption if rows is None else int(rows),
            maximum_duration=maximum_duration,
            minimum_duration=min(minimum_duration, maximum_duration),
        )


@dataclass(slots=True)
class Cue:
    """One caption. `rows` are display lines; `escaped` rows are already WebVTT cue text (from Gladia)."""

    start: int
    end: int
    rows: list[str]
    voice: str | None = None
    escaped: bool = field(default=False)


def render_srt(transcript: Transcript, limits: SubtitleLimits) -> str:
    """Return a SubRip file for the transcript: numbered cues, `HH:MM:SS,mmm`; "" when there is no speech."""
    cues = _gladia_cues(transcript, "srt", limits) or cues_from_utterances(transcript, limits)
    blocks = []
    for number, cue in enumerate(cues, start=1):
        text = "\n".join(row.replace("-->", "->") for row in cue.rows)
        blocks.append(f"{number}\n{_clock(cue.start, ',')} --> {_clock(cue.end, ',')}\n{text}\n\n")
    return "".join(blocks)


def render_vtt(transcript: Transcript, limits: SubtitleLimits) -> str:
    """Return a WebVTT file for the transcript, with `<v Speaker N>` when diarized; "WEBVTT\\n" when empty."""
    cues = _gladia_cues(transcript, "vtt", limits)
    if cues:
        _attach_voices(cues, transcript)
    else:
        cues = cues_from_utterances(transcript, limits)
    blocks = ["WEBVTT\n"]
    for cue in cues:
        rows = cue.rows if cue.escaped else [_vtt_escape(row) for row in cue.rows]
        text = "\n".join(rows)
        if cue.voice is not None and not text.startswith("<v"):
            text = f"<v {cue.voice}>{text}"
        blocks.append(f"{_clock(cue.start, '.')} --> {_clock(cue.end, '.')}\n{text}\n")
    return "\n".join(blocks)


def speaker_labeler(transcript: Transcript) -> Callable[[Utterance], str | None]:
    """Return how to label an utterance for humans: "Speaker N" (numbered from 1) when diarized, else
    "Channel N" when the audio had several channels, else None (no labels)."""
    utterances = transcript.utterances
    if any(utterance.speaker is not None for utterance in utterances):
        return lambda utterance: None if utterance.speaker is None else f"Speaker {utterance.speaker + 1}"
    if len({utterance.channel for utterance in utterances}) > 1:
        return lambda utterance: f"Channel {utterance.channel + 1}"
    return lambda utterance: None


def join_words(parts: Iterable[str]) -> str:
    """Join word texts the way the language writes them: with spaces, except between characters of
    scripts written without spaces (Chinese, Japanese, Thai, ...) and before closing punctuation."""
    text = ""
    for part in parts:
        if not part:
            continue
        text = part if not text else text + _joiner(text[-1], part[0]) + part
    return text


# --- building cues from utterances -------------------------------------------------------------------


@dataclass(slots=True)
class _Token:
    text: str
    start: int
    end: int


def cues_from_utterances(transcript: Transcript, limits: SubtitleLimits) -> list[Cue]:
    """Cut every utterance into cues within the limits and normalise the whole timeline."""
    width = limits.maximum_characters_per_row
    maximum_ms = round(limits.maximum_duration * 1000)
    label = speaker_labeler(transcript)
    cues: list[Cue] = []
    for utterance in transcript.utterances:
        voice = label(utterance)
        start, end = _milliseconds(utterance.start), _milliseconds(utterance.end)
        text = " ".join(utterance.text.split())
        if text and end - start <= maximum_ms and len(text) <= width * limits.maximum_rows_per_caption:
            rows = _wrap(text, width)
            if len(rows) <= limits.maximum_rows_per_caption:
                cues.append(Cue(start, end, rows, voice))
                continue
        cues.extend(_pack(_tokens(utterance, width), limits, voice))
    return _normalise(cues, round(limits.minimum_duration * 1000))


def _tokens(utterance: Utterance, width: int) -> list[_Token]:
    """The utterance's words as tokens no wider than a row; synthesised from its text when it has none
    (times spread by character count over the utterance)."""
    tokens: list[_Token] = []
    if utterance.words:
        for word in utterance.words:
            if word.text:
                start = _milliseconds(word.start)
                tokens.extend(_split_token(word.text, start, max(start, _milliseconds(word.end)), width))
        return tokens
    pieces = [piece for part in utterance.text.split() for piece in _chunks(part, width)]
    total = sum(len(piece) for piece in pieces) or 1
    start = _milliseconds(utterance.start)
    span = max(0, _milliseconds(utterance.end) - start)
    done = 0
    for piece in pieces:
        tokens.append(
            _Token(piece, start + span * done // total, start + span * (done + len(piece)) // total)
        )
        done += len(piece)
    return tokens


def _split_token(text: str, start: int, end: int, width: int) -> list[_Token]:
    if len(text) <= width:
        return [_Token(text, start, end)]
    pieces = _chunks(text, width)
    span = end - start
    tokens, done = [], 0
    for piece in pieces:
        begin = start + span * done // len(text)
        done += len(piece)
        tokens.append(_Token(piece, begin, start + span * done // len(text)))
    return tokens


def _pack(tokens: Sequence[_Token], limits: SubtitleLimits, voice: str | None) -> list[Cue]:
    """Greedily fill cues with tokens: a new row when a row is full, a new cue when the rows are used up
    or the cue would last longer than the maximum duration."""
    width = limits.maximum_characters_per_row
    maximum_rows = limits.maximum_rows_per_caption
    maximum_ms = round(limits.maximum_duration * 1000)
    cues: list[Cue] = []
    rows: list[str] = []
    row = ""
    start = end = 0
    for token in tokens:
        if rows or row:
            joiner = _joiner(row[-1], token.text[0]) if row else ""
            fits = len(row) + len(joiner) + len(token.text) <= width
            if token.end - start > maximum_ms or (not fits and len(rows) + 1 >= maximum_rows):
                cues.append(Cue(start, min(end, start + maximum_ms), [*rows, row], voice))
                rows, row, start, end = [], token.text, token.start, token.end
            elif fits:
                row += joiner + token.text
                end = max(end, token.end)
            else:
                rows.append(row)
                row, end = token.text, max(end, token.end)
        else:
            row, start, end = token.text, token.start, token.end
    if row:
        cues.append(Cue(start, min(end, start + maximum_ms), [*rows, row], voice))
    return cues


def _normalise(cues: list[Cue], minimum_ms: int, *, lengthen_short: bool = True) -> list[Cue]:
    """Sort by time; give a zero-length cue `minimum_ms` (at least 1 ms); never let two cues overlap (an
    earlier cue ends where a later one starts; a cue starting together with the previous one waits for
    it); then, with `lengthen_short`, lengthen short cues up to `minimum_ms` where the next cue leaves
    room. Cues without text are dropped."""
    ordered = sorted((cue for cue in cues if any(row.strip() for row in cue.rows)), key=_time_key)
    result: list[Cue] = []
    for cue in ordered:
        if cue.end <= cue.start:
            cue.end = cue.start + max(minimum_ms, 1)
        if result and cue.start < result[-1].end:
            previous = result[-1]
            if cue.start > previous.start:
                previous.end = cue.start
            else:
                length = cue.end - cue.start
                cue.start = previous.end
                cue.end = cue.start + length
        result.append(cue)
    for index, cue in enumerate(result if lengthen_short else ()):
        if cue.end - cue.start < minimum_ms:
            room = result[index + 1].start if index + 1 < len(result) else cue.start + minimum_ms
            cue.end = max(cue.end, min(cue.start + minimum_ms, room))
    return result


def _time_key(cue: Cue) -> tuple[int, int]:
    return cue.start, cue.end


# --- Gladia's own subtitle files ---------------------------------------------------------------------

_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{1,2})[.,](\d{1,3})"
_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}")


def _gladia_cues(transcript: Transcript, subtitle_format: str, limits: SubtitleLimits) -> list[Cue]:
    """Cues of Gladia's own file for this format, or [] when it has none or none parse. Normalised like
    our own, except that Gladia's durations are kept: only a zero-length cue is lengthened (rather than
    dropped with its text); an empty one is dropped."""
    text = transcript.subtitles.get(subtitle_format)
    if not text:
        return []
    cues: list[Cue] = []
    current: Cue | None = None
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        match = _TIMING.match(line)
        if match:
            groups = match.groups()
            current = Cue(_clock_ms(groups[:4]), _clock_ms(groups[4:]), [], escaped=subtitle_format == "vtt")
            cues.append(current)
        elif not line.strip():
            current = None
        elif current is not None:
            current.rows.append(line.strip())
    return _normalise(cues, round(limits.minimum_duration * 1000), lengthen_short=False)


def _attach_voices(cues: list[Cue], transcript: Transcript) -> None:
    """Give each of Gladia's cues the label of the utterance it falls in (Gladia's vtt has none)."""
    label = speaker_labeler(transcript)
    timed = sorted(
        ((_milliseconds(u.start), _milliseconds(u.end), label(u)) for u in transcript.utterances),
        key=lambda item: item[0],
    )
    if not any(voice for _, _, voice in timed):
        return
    index = 0
    for cue in cues:
        middle = (cue.start + cue.end) // 2
        while index + 1 < len(timed) and timed[index + 1][0] <= middle:
            index += 1
        if timed and timed[index][0] <= middle:
            cue.voice = timed[index][2]


def _clock_ms(groups: Sequence[str | None]) -> int:
    hours, minutes, seconds, fraction = groups
    fraction = (fraction or "0").ljust(3, "0")
    return ((int(hours or 0) * 60 + int(minutes or 0)) * 60 + int(seconds or 0)) * 1000 + int(fraction)


# --- small helpers ------------------------------------------------------------------------------------


def _clock(milliseconds: int, separator: str) -> str:
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, rest = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{rest:03d}"


def _milliseconds(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _wrap(text: str, width: int) -> list[str]:
    """Greedy line fill at spaces; words wider than a row (or unspaced scripts) are cut at the width."""
    rows: list[str] = []
    row = ""
    for part in text.split():
        for piece in _chunks(part, width):
            if not row:
                row = piece
            elif len(row) + 1 + len(piece) <= width and _joiner(row[-1], piece[0]) == " ":
                row += " " + piece
            elif len(row) + len(piece) <= width and _joiner(row[-1], piece[0]) == "":
                row += piece
            else:
                rows.append(row)
                row = piece
    if row:
        rows.append(row)
    return rows


def _chunks(text: str, width: int) -> list[str]:
    return [text[index : index + width] for index in range(0, len(text), width)] or [text]


# Closing punctuation, Latin and CJK (full-width), written as escapes to keep look-alikes visible.
_CLOSING = frozenset(
    ",.;:!?%)]}"
    "\u00bb\u201d\u2019\u2026\u3001\u3002\u300d\u300f\u3011"
    "\uff0c\uff0e\uff01\uff1f\uff1a\uff1b\uff09"
)


def _joiner(before: str, after: str) -> str:
    if after in _CLOSING or (_unspaced(before) and _unspaced(after)):
        return ""
    return " "


def _unspaced(character: str) -> bool:
    """True for characters of scripts written without spaces between words."""
    code = ord(character)
    return (
        0x3000 <= code <= 0x9FFF  # CJK punctuation, kana, CJK ideographs (with extension A)
        or 0xF900 <= code <= 0xFAFF  # CJK compatibility ideographs
        or 0xFF00 <= code <= 0xFFEF  # full-width forms
        or 0x0E00 <= code <= 0x0EFF  # Thai, Lao
        or 0x1000 <= code <= 0x109F  # Myanmar
        or 0x1780 <= code <= 0x17FF  # Khmer
        or 0x20000 <= code <= 0x3FFFF  # CJK extensions B and later
    )


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _bounded(value: object, low: float, high: float, *, integer: bool) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if integer and not (isinstance(value, int) or float(value).is_integer()):
        return None
    if not math.isfinite(value) or not low <= value <= high:
        return None
    return float(value)
