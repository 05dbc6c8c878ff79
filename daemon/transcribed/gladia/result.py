"""A typed, tolerant view of a Gladia v2 pre-recorded job body (API.md §4, §12.5).

Given the decoded JSON of `GET /v2/pre-recorded/{id}` (or of a callback's result), `parse_job` returns a
`JobView`; `parse_result` does the same for the `result` object alone. Extra keys are ignored, so new API
fields never break parsing. A body without the fields the outputs need, or with a wrong type, raises
`MalformedResultError` with a one-line reason naming the dotted key; no other exception escapes.

Required here means "needed to write a transcript": times, texts and word lists. Fields the spec marks
required but no output uses (an utterance's `confidence` or `channel`, a job's `error_code`) default when
absent, because losing a paid transcript over a missing confidence helps nobody.

Stdlib only (plus errors): every layer may import this module.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from transcribed.errors import MalformedResultError

__all__ = [
    "JobView",
    "Transcript",
    "TranscriptResult",
    "Utterance",
    "Word",
    "parse_job",
    "parse_result",
]


@dataclass(frozen=True)
class Word:
    """One timed word; `text` has Gladia's leading (and any trailing) whitespace stripped."""

    text: str
    start: float
    end: float
    confidence: float


@dataclass(frozen=True)
class Utterance:
    """A stretch of speech by one speaker on one channel. `speaker` is Gladia's 0-based id, None
    without diarization; `language` is None when Gladia gave none."""

    start: float
    end: float
    text: str
    language: str | None
    channel: int
    speaker: int | None
    confidence: float
    words: tuple[Word, ...]


@dataclass(frozen=True)
class Transcript:
    """The transcription (or one translation). `subtitles` maps "srt"/"vtt" to Gladia's own file text."""

    full_transcript: str
    languages: tuple[str, ...]
    utterances: tuple[Utterance, ...]
    subtitles: Mapping[str, str]


@dataclass(frozen=True)
class TranscriptResult:
    """A done job's result. `translations` maps each target language to its transcript; `summary` is
    None unless summarization succeeded with a non-empty text; `raw` is the result object as received."""

    audio_duration: float
    transcript: Transcript
    translations: Mapping[str, Transcript]
    summary: str | None
    raw: Mapping[str, Any]


@dataclass(frozen=True)
class JobView:
    """A job at any status. `result` is set exactly when the job is done; `raw` is the whole body."""

    id: str
    status: str
    error_code: int | None
    custom_metadata: Mapping[str, Any] | None
    result: TranscriptResult | None
    raw: Mapping[str, Any]


def parse_job(body: object) -> JobView:
    """Given a decoded job body, return its typed view.

    Raise MalformedResultError when it is not an object, lacks `id` or `status`, has a wrong type, or is
    `done` without a parsable `result`. `status` may be any string (an unknown one is kept as-is).
    """
    job = _object(body, "body")
    job_id = _string(job, "id", "body")
    status = _string(job, "status", "body")
    error_code = _optional_int(job, "error_code", "body")
    metadata = job.get("custom_metadata")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise MalformedResultError(f"body.custom_metadata: expected an object or null, got {_kind(metadata)}")
    result: TranscriptResult | None = None
    if status == "done":
        if job.get("result") is None:
            raise MalformedResultError("body.result: a done job has no result")
        result = _parse_result(job["result"], "body.result")
    return JobView(
        id=job_id, status=status, error_code=error_code, custom_metadata=metadata, result=result, raw=job
    )


def parse_result(result: object) -> TranscriptResult:
    """Given a decoded `result` object, return its typed view; raise MalformedResultError as parse_job."""
    return _parse_result(result, "result")


def _parse_result(value: object, where: str) -> TranscriptResult:
    result = _object(value, where)
    metadata = _object(result.get("metadata"), f"{where}.metadata")
    audio_duration = _number(metadata, "audio_duration", f"{where}.metadata")
    transcript = _parse_transcript(result.get("transcription"), f"{where}.transcription")
    return TranscriptResult(
        audio_duration=audio_duration,
        transcript=transcript,
        translations=_parse_translations(result.get("translation"), f"{where}.translation"),
        summary=_parse_summary(result.get("summarization"), f"{where}.summarization"),
        raw=result,
    )


def _parse_transcript(value: object, where: str) -> Transcript:
    transcription = _object(value, where)
    full = _string(transcription, "full_transcript", where)
    languages = _string_list(transcription.get("languages", []), f"{where}.languages")
    utterances_value = transcription.get("utterances")
    if not isinstance(utterances_value, list):
        raise MalformedResultError(f"{where}.utterances: expected a list, got {_kind(utterances_value)}")
    utterances = tuple(
        _parse_utterance(item, f"{where}.utterances[{index}]") for index, item in enumerate(utterances_value)
    )
    return Transcript(
        full_transcript=full,
        languages=languages,
        utterances=utterances,
        subtitles=_parse_subtitles(transcription.get("subtitles"), f"{where}.subtitles"),
    )


def _parse_utterance(value: object, where: str) -> Utterance:
    utterance = _object(value, where)
    words_value = utterance.get("words")
    if not isinstance(words_value, list):
        raise MalformedResultError(f"{where}.words: expected a list, got {_kind(words_value)}")
    words = tuple(_parse_word(item, f"{where}.words[{index}]") for index, item in enumerate(words_value))
    language = utterance.get("language")
    if language is not None and not isinstance(language, str):
        raise MalformedResultError(f"{where}.language: expected a string or null, got {_kind(language)}")
    speaker = _optional_int(utterance, "speaker", where)
    channel = _optional_int(utterance, "channel", where)
    return Utterance(
        start=_number(utterance, "start", where),
        end=_number(utterance, "end", where),
        text=_string(utterance, "text", where),
        language=language or None,
        channel=channel or 0,
        speaker=speaker,
        confidence=_optional_number(utterance, "confidence", where),
        words=words,
    )


def _parse_word(value: object, where: str) -> Word:
    word = _object(value, where)
    return Word(
        text=_string(word, "word", where).strip(),
        start=_number(word, "start", where),
        end=_number(word, "end", where),
        confidence=_optional_number(word, "confidence", where),
    )


def _parse_subtitles(value: object, where: str) -> Mapping[str, str]:
    if value is None:
        return {}
    if not isinstance(value, list):
        raise MalformedResultError(f"{where}: expected a list, got {_kind(value)}")
    subtitles: dict[str, str] = {}
    for index, item in enumerate(value):
        entry = _object(item, f"{where}[{index}]")
        subtitle_format = _string(entry, "format", f"{where}[{index}]")
        # The first file of a format wins: Gladia sends one per requested format.
        subtitles.setdefault(subtitle_format, _string(entry, "subtitles", f"{where}[{index}]"))
    return subtitles


def _parse_translations(value: object, where: str) -> Mapping[str, Transcript]:
    """One transcript per target language. A failed add-on (success false, results null) or a failed
    item (error set) yields no entry: the job itself is still done (API.md §4.1)."""
    if value is None:
        return {}
    block = _object(value, where)
    results = block.get("results")
    if results is None or block.get("success") is False:
        return {}
    if not isinstance(results, list):
        raise MalformedResultError(f"{where}.results: expected a list or null, got {_kind(results)}")
    translations: dict[str, Transcript] = {}
    for index, item in enumerate(results):
        entry = _object(item, f"{where}.results[{index}]")
        if entry.get("error") is not None:
            continue
        translated = _parse_transcript(entry, f"{where}.results[{index}]")
        # An item names its target language only through `languages`; without one it cannot be placed.
        if translated.languages:
            translations.setdefault(translated.languages[0], translated)
    return translations


def _parse_summary(value: object, where: str) -> str | None:
    if value is None:
        return None
    block = _object(value, where)
    results = block.get("results")
    if block.get("success") is False or results is None:
        return None
    if not isinstance(results, str):
        raise MalformedResultError(f"{where}.results: expected a string or null, got {_kind(results)}")
    return results.strip() or None


def _object(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedResultError(f"{where}: expected an object, got {_kind(value)}")
    return value


def _string(container: Mapping[str, Any], key: str, where: str) -> str:
    value = container.get(key)
    if not isinstance(value, str):
        raise MalformedResultError(f"{where}.{key}: expected a string, got {_kind(value)}")
    return value


def _string_list(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise MalformedResultError(f"{where}: expected a list of strings, got {_kind(value)}")
    return tuple(value)


def _number(container: Mapping[str, Any], key: str, where: str) -> float:
    value = container.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedResultError(f"{where}.{key}: expected a number, got {_kind(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise MalformedResultError(f"{where}.{key}: number out of range") from None
    if not math.isfinite(number):
        raise MalformedResultError(f"{where}.{key}: expected a finite number, got {value!r}")
    return number


def _optional_number(container: Mapping[str, Any], key: str, where: str) -> float:
    return 0.0 if container.get(key) is None else _number(container, key, where)


def _optional_int(container: Mapping[str, Any], key: str, where: str) -> int | None:
    value = container.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedResultError(f"{where}.{key}: expected an integer or null, got {_kind(value)}")
    return value


def _kind(value: object) -> str:
    """A short, single-line description of a JSON value for error messages (never its whole content)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, Sequence):
        return "a list"
    return type(value).__name__
