"""Pure rendering: a done job -> the text of every output file (no I/O, no clock).

`render(job, formats, limits)` returns one `Rendered` per file: the requested formats for the transcript,
the same formats (except json, which already holds everything) for each translation, and the summary as
txt. Formats:

- txt: the full transcript; with diarization (or several channels), a paragraph per speaker turn.
- srt / vtt: see `outputs.subtitles`.
- json: the whole Gladia job body (request parameters, metadata, result), pretty, UTF-8.
- md: a readable transcript with timestamps and speakers, for notes and meetings.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from transcribed.gladia.result import JobView, Transcript, Utterance
from transcribed.outputs.subtitles import SubtitleLimits, join_words, render_srt, render_vtt, speaker_labeler

__all__ = ["FORMATS", "Kind", "Rendered", "SubtitleLimits", "render", "render_json", "render_md", "render_txt"]

FORMATS = ("txt", "srt", "vtt", "json", "md")
Kind = Literal["transcript", "translation", "summary"]


@dataclass(frozen=True)
class Rendered:
    """One output file's content. `language` is the transcript's detected language (None when Gladia
    detected none: the writer applies the fallback) or the translation's target language."""

    format: str
    language: str | None
    kind: Kind
    text: str


def render(job: JobView, formats: Sequence[str], limits: SubtitleLimits) -> list[Rendered]:
    """Given a done job, return the files to write, transcript first, then translations, then summary.

    Raise ValueError when the job has no result or a format is not one of FORMATS (config validates both
    before a job is ever rendered, so this is a programming error, not a job error).
    """
    if job.result is None:
        raise ValueError(f"job {job.id} has no result to render (status {job.status!r})")
    unknown = [name for name in formats if name not in FORMATS]
    if unknown:
        raise ValueError(f"unknown output formats {unknown}; expected some of {FORMATS}")
    wanted = list(dict.fromkeys(formats))
    result = job.result
    language = result.transcript.languages[0] if result.transcript.languages else None
    outputs: list[Rendered] = []
    for name in wanted:
        if name == "json":
            text = render_json(job.raw)
        else:
            text = _render_transcript(name, result.transcript, limits, result.audio_duration, None, result.summary)
        outputs.append(Rendered(name, language, "transcript", text))
    for target, translated in result.translations.items():
        for name in wanted:
            if name != "json":
                text = _render_transcript(name, translated, limits, result.audio_duration, target, None)
                outputs.append(Rendered(name, target, "translation", text))
    if result.summary is not None:
        outputs.append(Rendered("txt", language, "summary", result.summary + "\n"))
    return outputs


def _render_transcript(
    name: str,
    transcript: Transcript,
    limits: SubtitleLimits,
    duration: float,
    target: str | None,
    summary: str | None,
) -> str:
    if name == "txt":
        return render_txt(transcript)
    if name == "srt":
        return render_srt(transcript, limits)
    if name == "vtt":
        return render_vtt(transcript, limits)
    return render_md(transcript, audio_duration=duration, translation_of=target, summary=summary)


def render_txt(transcript: Transcript) -> str:
    """The transcript as plain text ending in a newline ("" when nothing was said). Without speakers it
    is Gladia's full transcript; with them, one "Speaker N: ..." paragraph per turn."""
    label = speaker_labeler(transcript)
    turns = _turns(transcript.utterances, label)
    if all(speaker is None for speaker, _, _ in turns):
        text = transcript.full_transcript.strip() or join_words(text for _, _, text in turns)
        return text + "\n" if text else ""
    paragraphs = [text if speaker is None else f"{speaker}: {text}" for speaker, _, text in turns]
    return "\n\n".join(paragraphs) + "\n" if paragraphs else ""


def render_md(
    transcript: Transcript,
    *,
    audio_duration: float,
    translation_of: str | None = None,
    summary: str | None = None,
) -> str:
    """A Markdown document: a heading, language and duration, an optional summary, then one paragraph per
    speaker turn (or per utterance without speakers), each led by its start time."""
    title = "Transcript" if translation_of is None else f"Translation ({_escape(translation_of)})"
    languages = ", ".join(_escape(language) for language in transcript.languages) or "unknown"
    lines = [f"# {title}", "", f"- Language: {languages}", f"- Duration: {_hms(audio_duration)}", ""]
    if summary:
        lines += ["## Summary", "", _escape_html(summary), ""]
    lines += ["## Transcript", ""]
    label = speaker_labeler(transcript)
    turns = _turns(transcript.utterances, label) if _labelled(transcript, label) else _lines(transcript)
    if not turns:
        lines += ["_No speech was detected._", ""]
    for speaker, start, text in turns:
        who = f" {speaker}:" if speaker else ""
        lines += [f"**[{_hms(start)}]{who}** {_escape(text)}", ""]
    return "\n".join(lines)


def render_json(body: Mapping[str, Any]) -> str:
    """The job body as pretty UTF-8 JSON (non-ASCII kept as is) ending in a newline. Objects and lists
    of plain values stay on one line each (a word per line), which keeps a 3-hour job readable and fast.
    Non-finite numbers, which strict JSON cannot carry, become null."""
    parts: list[str] = []
    try:
        _pretty(body, parts, "", _STRICT)
    except ValueError:
        parts = []
        _pretty(_finite(body), parts, "", _STRICT)
    return "".join(parts) + "\n"


# --- helpers -----------------------------------------------------------------------------------------

_Turn = tuple[str | None, float, str]


def _turns(utterances: Sequence[Utterance], label: Callable[[Utterance], str | None]) -> list[_Turn]:
    """Consecutive utterances (in time order) by the same speaker, merged: (label, start, text)."""
    turns: list[_Turn] = []
    texts: list[str] = []
    current: str | None = None
    start = 0.0
    for utterance in sorted(utterances, key=lambda item: item.start):
        text = utterance.text.strip()
        if not text:
            continue
        speaker = label(utterance)
        if texts and speaker != current:
            turns.append((current, start, join_words(texts)))
            texts = []
        if not texts:
            current, start = speaker, utterance.start
        texts.append(text)
    if texts:
        turns.append((current, start, join_words(texts)))
    return turns


def _lines(transcript: Transcript) -> list[_Turn]:
    ordered = sorted(transcript.utterances, key=lambda item: item.start)
    return [(None, item.start, item.text.strip()) for item in ordered if item.text.strip()]


def _labelled(transcript: Transcript, label: Callable[[Utterance], str | None]) -> bool:
    return any(label(utterance) is not None for utterance in transcript.utterances)


def _hms(seconds: float) -> str:
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, seconds_left = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds_left:02d}"


_MARKDOWN = str.maketrans({character: "\\" + character for character in "\\`*_[]<>#|~&"})


def _escape(text: str) -> str:
    """Transcribed speech is text, never markup: escape what Markdown (and inline HTML) would act on."""
    return " ".join(text.split()).translate(_MARKDOWN)


def _escape_html(text: str) -> str:
    """Gladia's summary may be Markdown-like (bullet points): keep that, but never raw HTML."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_STRICT = json.JSONEncoder(ensure_ascii=False, allow_nan=False)
_PLAIN = (str, int, float, bool, type(None))


def _pretty(value: object, parts: list[str], indent: str, encoder: json.JSONEncoder) -> None:
    """Indent containers that hold containers; print the rest with the C encoder on one line."""
    if isinstance(value, Mapping):
        if not value or all(isinstance(item, _PLAIN) for item in value.values()):
            parts.append(encoder.encode(dict(value)))
            return
        inner = indent + "  "
        parts.append("{")
        separator = "\n"
        for key, item in value.items():
            parts.append(f"{separator}{inner}{encoder.encode(str(key))}: ")
            _pretty(item, parts, inner, encoder)
            separator = ",\n"
        parts.append(f"\n{indent}}}")
    elif isinstance(value, list | tuple):
        if not value or all(isinstance(item, _PLAIN) for item in value):
            parts.append(encoder.encode(list(value)))
            return
        inner = indent + "  "
        if not (all(isinstance(item, Mapping) for item in value) and _plain_mapping(value[0])
                and _plain_rows(value, parts, inner, encoder)):
            parts.append("[")
            separator = "\n"
            for item in value:
                parts.append(separator + inner)
                _pretty(item, parts, inner, encoder)
                separator = ",\n"
        parts.append(f"\n{indent}]")
    else:
        parts.append(encoder.encode(value))


def _plain_rows(items: Sequence[Any], parts: list[str], inner: str, encoder: json.JSONEncoder) -> bool:
    """A list of flat objects (Gladia's words), one object per line, in a single C-encoder call: the
    encoder separates objects with exactly "}, {", so when that string occurs exactly once per gap it is
    a separator and never part of a value, and can be split on safely. Return False (nothing written) when
    it cannot: the caller then writes the items one by one."""
    encoded = encoder.encode([item if isinstance(item, dict) else dict(item) for item in items])
    if encoded.count("}, {") != len(items) - 1:
        return False
    parts.append("[\n" + inner + encoded[1:-1].replace("}, {", "},\n" + inner + "{"))
    return True


def _plain_mapping(value: Mapping[str, Any]) -> bool:
    return all(isinstance(item, _PLAIN) for item in value.values())


def _finite(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(key): _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value
