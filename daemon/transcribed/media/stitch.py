"""Stitching the parts of a split recording back into one Gladia job body. Pure: no I/O, no clock.

Given each part (its place in the source) and its done job body (`GET /v2/pre-recorded/{id}`), `stitch`
returns one body of the same shape, so the renderers, `render` and the `json` output treat it like any
other job:

- utterances, words and timed sentences are offset by the part's start, parts in order;
- `full_transcript` is joined; `languages` merged, the most spoken (by utterance time) first;
- Gladia's subtitle files are shifted and renumbered, when every part has the format (otherwise that
  format is dropped and the renderers build it from the utterances, as they do for any job without one);
- translations are stitched per target language (a language missing from some part is kept and listed in
  the metadata); summaries and other add-on text results are joined with a blank line, list results
  concatenated (not offset: their time fields are not documented);
- `result.metadata`: durations and billing summed, and a "transcribed" entry recording the parts (index,
  start, end, job id) and that speaker numbers restart in each part.

Stdlib and errors only.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

from transcribed.errors import MalformedResultError
from transcribed.media.split import Part

__all__ = ["SPEAKER_NOTE", "shift_subtitles", "stitch"]

SPEAKER_NOTE = ("Speaker numbers restart in each part (Gladia numbers speakers per job) and cannot be "
                "matched across parts: speaker 0 of one part need not be speaker 0 of the next.")
_KNOWN_BLOCKS = ("metadata", "transcription", "translation", "summarization", "sentences")
_TIMING = re.compile(r"^\s*((?:\d+:)?\d{1,2}:\d{2}[.,]\d{1,3})\s*-->\s*((?:\d+:)?\d{1,2}:\d{2}[.,]\d{1,3})(.*)$")


def stitch(parts: Sequence[tuple[Part, Mapping[str, Any]]]) -> dict[str, Any]:
    """Given each part and its done job body, return one job body for the whole source (see module doc).

    Parts may come in any order (they are sorted by index). Raise MalformedResultError (naming the part)
    when a body is not a done job with a result and a transcription; ValueError when there is no part.
    """
    if not parts:
        raise ValueError("nothing to stitch")
    ordered = sorted(parts, key=lambda item: item[0].index)
    bodies = [_object(body, f"part {part.index}") for part, body in ordered]
    results = []
    for (part, _), body in zip(ordered, bodies, strict=True):
        if body.get("status") != "done":
            raise MalformedResultError(f"part {part.index}: job {body.get('id')!r} is not done")
        part_result = _object(body.get("result"), f"part {part.index}: result")
        _object(part_result.get("transcription"), f"part {part.index}: result.transcription")
        results.append(part_result)
    offsets = [part.start for part, _ in ordered]
    stitched: dict[str, Any] = copy.deepcopy(dict(bodies[0]))
    stitched["status"] = "done"
    stitched["error_code"] = None
    finished = [b["completed_at"] for b in bodies if isinstance(b.get("completed_at"), str)]
    if finished:
        stitched["completed_at"] = max(finished)
    if isinstance(stitched.get("file"), dict):
        durations = _numbers([_mapping(b.get("file")).get("audio_duration") for b in bodies])
        if durations is not None:
            stitched["file"]["audio_duration"] = round(sum(durations), 3)
    missing: dict[str, list[int]] = {}
    result: dict[str, Any] = copy.deepcopy(dict(results[0]))
    result["metadata"] = _metadata(ordered, results, missing)
    result["transcription"] = _transcript(list(zip(offsets, (r["transcription"] for r in results), strict=True)))
    if any(r.get("translation") is not None for r in results):
        result["translation"] = _translations(ordered, results, missing)
    if any(isinstance(r.get("sentences"), Mapping) for r in results):
        result["sentences"] = _block([(o, r.get("sentences")) for o, r in zip(offsets, results, strict=True)])
    for name in dict.fromkeys(key for r in results for key in r):
        if name not in _KNOWN_BLOCKS:
            result[name] = _other(name, [(o, r.get(name)) for o, r in zip(offsets, results, strict=True)])
    if any(r.get("summarization") is not None for r in results):
        result["summarization"] = _block([(o, r.get("summarization")) for o, r in zip(offsets, results, strict=True)])
    if not missing:
        del result["metadata"]["transcribed"]["incomplete_translations"]
    stitched["result"] = result
    return stitched


def _metadata(ordered: Sequence[tuple[Part, Mapping[str, Any]]], results: Sequence[Mapping[str, Any]],
              missing: dict[str, list[int]]) -> dict[str, Any]:
    metadata: dict[str, Any] = copy.deepcopy(dict(_mapping(results[0].get("metadata"))))
    every = [_mapping(r.get("metadata")) for r in results]
    for key in ("audio_duration", "billing_time", "transcription_time"):
        values = _numbers([m.get(key) for m in every])
        if values is not None:
            metadata[key] = round(sum(values), 3)
    channels = _numbers([m.get("number_of_distinct_channels") for m in every])
    if channels is not None:
        metadata["number_of_distinct_channels"] = max(channels)
    metadata["transcribed"] = {
        "parts": [{"index": part.index, "start": part.start, "end": part.end, "job_id": body.get("id")}
                  for part, body in ordered],
        "note": f"Transcribed in {len(ordered)} parts, one Gladia job each, stitched into one transcript with "
                f"times from the start of the recording. {SPEAKER_NOTE}",
        # Filled in by _translations (the dict is shared): languages some parts lack, with those parts.
        "incomplete_translations": missing,
    }
    return metadata


def _transcript(pieces: Sequence[tuple[float, Any]], *, translation: bool = False) -> dict[str, Any]:
    """One transcription (or translation item) from its pieces, each (offset, piece). A translation keeps
    its target language first: that is how it is told apart from the others."""
    mappings = [(offset, _mapping(piece)) for offset, piece in pieces]
    merged: dict[str, Any] = copy.deepcopy(dict(mappings[0][1]))
    utterances = [_shift(u, offset) for offset, piece in mappings for u in _list(piece.get("utterances"))]
    merged["utterances"] = utterances
    texts = [piece.get("full_transcript") for _, piece in mappings]
    merged["full_transcript"] = " ".join(t.strip() for t in texts if isinstance(t, str) and t.strip())
    merged["languages"] = _languages([piece for _, piece in mappings], [] if translation else utterances)
    if any("sentences" in piece for _, piece in mappings):
        blocks = [(offset, _list(piece.get("sentences"))) for offset, piece in mappings]
        merged["sentences"] = [_block([(offset, b[i]) for offset, b in blocks if i < len(b)])
                               for i in range(max(len(b) for _, b in blocks))]
    if any("subtitles" in piece for _, piece in mappings):
        merged["subtitles"] = _subtitles(mappings)
    return merged


def _languages(pieces: Sequence[Mapping[str, Any]], utterances: Sequence[Any]) -> list[str]:
    order: dict[str, float] = {}
    for piece in pieces:
        for language in _list(piece.get("languages")):
            if isinstance(language, str):
                order.setdefault(language, 0.0)
    for utterance in utterances:
        language, start, end = utterance.get("language"), utterance.get("start"), utterance.get("end")
        if isinstance(language, str) and language and _is_number(start) and _is_number(end):
            order[language] = order.get(language, 0.0) + max(0.0, end - start)
    return sorted(order, key=lambda language: -order[language])


def _translations(ordered: Sequence[tuple[Part, Mapping[str, Any]]], results: Sequence[Mapping[str, Any]],
                  missing: dict[str, list[int]]) -> Any:
    blocks = [_mapping(r.get("translation")) for r in results]
    merged = _envelope(blocks)
    by_language: dict[str, list[tuple[int, float, Mapping[str, Any]]]] = {}
    failed: dict[str, Mapping[str, Any]] = {}
    for (part, _), block in zip(ordered, blocks, strict=True):
        for item in _list(block.get("results")):
            item = _mapping(item)
            languages = _list(item.get("languages"))
            if not languages or not isinstance(languages[0], str):
                continue
            if item.get("error") is not None:
                failed.setdefault(languages[0], item)
                continue
            by_language.setdefault(languages[0], []).append((part.index, part.start, item))
    items: list[Any] = []
    for language in dict.fromkeys([*by_language, *failed]):
        found = by_language.get(language)
        if not found:
            items.append(copy.deepcopy(dict(failed[language])))
            continue
        item = _transcript([(offset, piece) for _, offset, piece in found], translation=True)
        item["error"] = None
        items.append(item)
        lacking = [part.index for part, _ in ordered if part.index not in {index for index, _, _ in found}]
        if lacking:
            missing[language] = lacking
    merged["results"] = items
    return merged


def _block(pieces: Sequence[tuple[float, Any]]) -> Any:
    """An add-on envelope {success, is_empty, exec_time, error, results} from its pieces: list results
    concatenated (timed items offset), text results joined with a blank line."""
    present = [(offset, _mapping(block)) for offset, block in pieces if isinstance(block, Mapping)]
    if not present:
        return None
    merged = _envelope([block for _, block in present])
    values: list[tuple[float, Any]] = [(offset, block["results"]) for offset, block in present
                                       if block.get("results") is not None]
    lists = [(offset, value) for offset, value in values if isinstance(value, list)]
    texts = [value.strip() for _, value in values if isinstance(value, str)]
    if values and len(lists) == len(values):
        merged["results"] = [_shift(item, offset) for offset, value in lists for item in value]
    elif values and len(texts) == len(values):
        merged["results"] = "\n\n".join(text for text in texts if text)
    else:
        merged["results"] = copy.deepcopy(values[0][1]) if values else None
    return merged


def _other(name: str, pieces: Sequence[tuple[float, Any]]) -> Any:
    """An add-on this module does not know: envelopes merged without offsets, anything else kept from the
    first part that has it."""
    if all(isinstance(block, Mapping) or block is None for _, block in pieces):
        return _block([(0.0, block) for _, block in pieces])
    return copy.deepcopy(next((block for _, block in pieces if block is not None), None))


def _envelope(blocks: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = copy.deepcopy(dict(blocks[0])) if blocks else {}
    succeeded = [b for b in blocks if b.get("success") is True]
    if any("success" in b for b in blocks):
        merged["success"] = bool(succeeded)
    if any("is_empty" in b for b in blocks):
        merged["is_empty"] = all(b.get("is_empty") is True for b in blocks)
    times = _numbers([b.get("exec_time") for b in blocks])
    if times is not None:
        merged["exec_time"] = round(sum(times), 3)
    if "error" in merged:
        errors = [b.get("error") for b in blocks if b.get("error") is not None]
        merged["error"] = copy.deepcopy(errors[0]) if errors and not succeeded else None
    return merged


def _subtitles(pieces: Sequence[tuple[float, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    per_part: list[dict[str, str]] = []
    for _, piece in pieces:
        files: dict[str, str] = {}
        for entry in _list(piece.get("subtitles")):
            entry = _mapping(entry)
            if isinstance(entry.get("format"), str) and isinstance(entry.get("subtitles"), str):
                files.setdefault(entry["format"], entry["subtitles"])
        per_part.append(files)
    merged = []
    for subtitle_format in per_part[0]:
        if not all(subtitle_format in files for files in per_part):
            continue   # a gap would silently lose speech: the renderers rebuild this format from utterances
        cues: list[str] = []
        for (offset, _), files in zip(pieces, per_part, strict=True):
            cues.extend(shift_subtitles(files[subtitle_format], offset, subtitle_format))
        merged.append({"format": subtitle_format, "subtitles": _subtitle_file(cues, subtitle_format)})
    return merged


def shift_subtitles(text: str, offset: float, subtitle_format: str) -> list[str]:
    """Given an SRT or VTT file's text, return its cues (numbering dropped, other cue ids kept) with every
    timestamp moved `offset` seconds later, in the format's own notation. Blocks without a timing line
    (the VTT header, NOTE and STYLE blocks, stray text) are dropped."""
    separator = "." if subtitle_format == "vtt" else ","
    cues = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        lines = block.strip("\n").split("\n")
        found = next(((i, m) for i, m in enumerate(map(_TIMING.match, lines)) if m is not None), None)
        if found is None:
            continue
        timing, match = found
        start = _clock(_seconds(match.group(1)) + offset, separator)
        end = _clock(_seconds(match.group(2)) + offset, separator)
        ids = [line for line in lines[:timing] if line.strip() and not line.strip().isdigit()]
        cues.append("\n".join([*ids, f"{start} --> {end}{match.group(3).rstrip()}", *lines[timing + 1:]]))
    return cues


def _subtitle_file(cues: Sequence[str], subtitle_format: str) -> str:
    numbered = []
    for number, cue in enumerate(cues, start=1):
        has_id = not _TIMING.match(cue.split("\n", 1)[0])
        numbered.append(cue if has_id and subtitle_format == "vtt" else f"{number}\n{cue}")
    body = "\n\n".join(numbered) + ("\n" if numbered else "")
    return "WEBVTT\n\n" + body if subtitle_format == "vtt" else body


def _seconds(clock: str) -> float:
    fields = clock.replace(",", ".").split(":")
    seconds = float(fields[-1])
    for index, value in enumerate(reversed(fields[:-1]), start=1):
        seconds += int(value) * 60 ** index
    return seconds


def _clock(seconds: float, separator: str) -> str:
    milliseconds = max(0, round(seconds * 1000))
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, fraction = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{whole:02d}{separator}{fraction:03d}"


def _shift(item: Any, offset: float) -> Any:
    """A copy of a timed item (utterance, word, timed sentence) with start/end (and its words) moved by
    `offset`; anything else copied unchanged."""
    if not isinstance(item, Mapping):
        return copy.deepcopy(item)
    shifted: dict[str, Any] = copy.deepcopy(dict(item))
    if offset:
        for key in ("start", "end"):
            if _is_number(shifted.get(key)):
                shifted[key] = round(shifted[key] + offset, 3)
        if isinstance(item.get("words"), list):
            shifted["words"] = [_shift(word, offset) for word in item["words"]]
    return shifted


def _object(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedResultError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _numbers(values: Sequence[object]) -> list[float] | None:
    """The values as numbers when every one is a number, else None."""
    numbers = [float(v) for v in values if _is_number(v)]
    return numbers if len(numbers) == len(values) else None


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
