"""Deterministic emulated transcripts in Gladia's `result` shape (API.md §4.1, §12.5). Pure; stdlib only.

The same seed (the audio's sha256) and parameters always give the same result. The first utterance starts
with the words "[emulated transcript]" so nobody mistakes the output for a real transcription.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

MARKER_WORDS = ("[emulated", " transcript]")
_VOCABULARY = (
    "we", "will", "now", "look", "at", "the", "plan", "for", "next", "week", "and", "then", "talk", "about",
    "budget", "this", "is", "a", "short", "note", "on", "our", "project", "team", "meeting", "so", "let's",
    "start", "with", "numbers", "from", "last", "quarter", "they", "were", "good", "I", "think", "it",
    "works", "well", "you", "can", "see", "results", "here", "thanks", "everyone", "for", "joining",
    "question", "answer", "later", "today", "product", "launch", "customer", "feedback", "review", "draft",
)
_NOMINAL_MINIMUM_SECONDS = 4.0


def build_result(*, seed: bytes, duration: float, channels: int, params: dict[str, Any],
                 transcription_time: float) -> dict[str, Any]:
    """Given the audio's sha256 digest, its duration (s) and channel count, the job's request_params and
    the processing time, return the job's `result`: metadata, transcription (with subtitles and sentences
    when asked) and the translation / summarization / other add-on blocks that were switched on."""
    rng = random.Random(int.from_bytes(seed[:16], "big"))
    distinct_channels = max(1, channels)
    languages = list((params.get("language_config") or {}).get("languages") or []) or ["en"]
    code_switching = bool((params.get("language_config") or {}).get("code_switching")) and len(languages) > 1
    utterances = _utterances(rng, duration, distinct_channels, languages, code_switching,
                             _speaker_count(params) if params.get("diarization") else 0)
    transcription = _transcription(utterances, params, rng)
    detected = [language for language, _ in Counter(u["language"] for u in utterances).most_common()]
    transcription["languages"] = detected or languages[:1]
    result: dict[str, Any] = {
        "metadata": {
            "audio_duration": duration,
            "number_of_distinct_channels": distinct_channels,
            "billing_time": round(duration * distinct_channels, 6),
            "transcription_time": round(transcription_time, 3),
        },
        "transcription": transcription,
    }
    if params.get("translation"):
        targets = (params.get("translation_config") or {}).get("target_languages") or []
        result["translation"] = _addon(rng, [_translation(utterances, target, params, rng) for target in targets])
    if params.get("summarization"):
        kind = (params.get("summarization_config") or {}).get("type", "general")
        result["summarization"] = _addon(rng, _summary(kind, duration, len(utterances)))
    if params.get("named_entity_recognition"):
        result["named_entity_recognition"] = _addon(rng, [])
    if params.get("sentiment_analysis"):
        result["sentiment_analysis"] = _addon(rng, "[emulated sentiment] neutral")
    if params.get("audio_to_llm"):
        prompts = (params.get("audio_to_llm_config") or {}).get("prompts") or []
        result["audio_to_llm"] = _addon(rng, [
            _addon(rng, {"prompt": str(prompt), "response": "[emulated response]"}) for prompt in prompts])
    return result


def _addon(rng: random.Random, results: Any) -> dict[str, Any]:
    return {"success": True, "is_empty": not results, "exec_time": round(rng.uniform(0.2, 2.0), 3),
            "error": None, "results": results}


def _speaker_count(params: dict[str, Any]) -> int:
    config = params.get("diarization_config") or {}
    if config.get("number_of_speakers"):
        return int(config["number_of_speakers"])
    low = max(1, int(config.get("min_speakers") or 1))
    high = int(config.get("max_speakers") or 0)
    count = max(low, 2)
    return min(count, high) if high >= low else count


def _utterances(rng: random.Random, duration: float, channels: int, languages: list[str],
                code_switching: bool, speakers: int) -> list[dict[str, Any]]:
    if duration <= 0:
        return []
    # Very short audio is laid out on a longer nominal timeline and then scaled to fit.
    nominal = max(duration, _NOMINAL_MINIMUM_SECONDS)
    scale = duration / nominal
    order: dict[int, int] = {}
    utterances: list[dict[str, Any]] = []
    clock = rng.uniform(0.1, 0.6)
    while clock < nominal - 0.6:
        words: list[dict[str, Any]] = []
        texts = list(MARKER_WORDS) if not utterances else []
        for _ in range(rng.randint(3, 12)):
            texts.append((" " if texts else "") + rng.choice(_VOCABULARY))
        for index, text in enumerate(texts):
            if index > 0 and index % 5 == 0 and rng.random() < 0.4:
                words[-1]["word"] += ","
            length = rng.uniform(0.15, 0.5)
            if clock + length > nominal and words:
                break
            words.append({"word": text, "start": clock, "end": min(clock + length, nominal),
                          "confidence": round(rng.uniform(0.8, 0.99), 2)})
            clock += length + rng.choice((0.0, 0.0, 0.04, 0.1))
        words[-1]["word"] += "?" if rng.random() < 0.15 else "."
        words[0]["word"] = words[0]["word"][:1].upper() + words[0]["word"][1:]
        for word in words:
            word["start"] = round(word["start"] * scale, 3)
            word["end"] = round(min(word["end"] * scale, duration), 3)
        utterance: dict[str, Any] = {
            "words": words,
            "text": "".join(word["word"] for word in words).strip(),
            "language": rng.choice(languages) if code_switching else languages[0],
            "start": words[0]["start"],
            "end": words[-1]["end"],
            "confidence": round(sum(word["confidence"] for word in words) / len(words), 2),
            "channel": len(utterances) % channels,
        }
        if speakers:
            raw = 0 if not utterances else rng.randrange(speakers)
            utterance["speaker"] = order.setdefault(raw, len(order))
        utterances.append(utterance)
        clock += rng.uniform(0.4, 1.6)
    return utterances


def _transcription(utterances: list[dict[str, Any]], params: dict[str, Any],
                   rng: random.Random) -> dict[str, Any]:
    transcription: dict[str, Any] = {
        "full_transcript": " ".join(utterance["text"] for utterance in utterances),
        "languages": [],
        "utterances": utterances,
    }
    if params.get("sentences"):
        transcription["sentences"] = [_addon(rng, [utterance["text"] for utterance in utterances])]
    if params.get("subtitles"):
        transcription["subtitles"] = subtitles(utterances, params.get("subtitles_config") or {})
    return transcription


def _translation(utterances: list[dict[str, Any]], target: str, params: dict[str, Any],
                 rng: random.Random) -> dict[str, Any]:
    translated = [{**utterance, "language": target} for utterance in utterances]
    item = _transcription(translated, params, rng)
    item["full_transcript"] = f"[emulated translation to {target}] " + item["full_transcript"]
    item["languages"] = [target]
    item["error"] = None
    return item


def _summary(kind: str, duration: float, count: int) -> str:
    minutes = max(1, round(duration / 60))
    if kind == "bullet_points":
        return (f"- [emulated summary] about {minutes} minute(s) of audio\n"
                f"- {count} utterance(s) were emulated\n- no real speech recognition took place")
    if kind == "concise":
        return f"[emulated summary] {minutes} minute(s) of emulated speech."
    return (f"[emulated summary] This is an emulated transcript of about {minutes} minute(s) of audio "
            f"in {count} utterance(s); no real speech recognition took place.")


def subtitles(utterances: list[dict[str, Any]], config: dict[str, Any]) -> list[dict[str, str]]:
    """Return `[{format, subtitles}]` for each requested format: SRT with a comma before the
    milliseconds, VTT starting with "WEBVTT\\n\\n"; cues follow the config's duration and row limits."""
    cues = _cues(utterances, config)
    rendered = []
    for kind in config.get("formats") or ["srt"]:
        separator = "," if kind == "srt" else "."
        body = "\n".join(f"{index}\n{_clock(start, separator)} --> {_clock(end, separator)}\n{text}\n"
                         for index, (start, end, text) in enumerate(cues, start=1))
        rendered.append({"format": kind, "subtitles": body if kind == "srt" else "WEBVTT\n\n" + body})
    return rendered


def _cues(utterances: list[dict[str, Any]], config: dict[str, Any]) -> list[tuple[float, float, str]]:
    max_chars = config.get("maximum_characters_per_row")
    max_rows = config.get("maximum_rows_per_caption") or 2
    max_duration = config.get("maximum_duration")
    cues: list[tuple[float, float, str]] = []
    for utterance in utterances:
        current: list[dict[str, Any]] = []
        for word in utterance["words"]:
            candidate = [*current, word]
            too_long = max_duration is not None and candidate[-1]["end"] - candidate[0]["start"] > max_duration
            too_wide = max_chars is not None and len(_rows(candidate, max_chars)) > max_rows
            if current and (too_long or too_wide):
                cues.append(_cue(current, max_chars))
                current = [word]
            else:
                current = candidate
        if current:
            cues.append(_cue(current, max_chars))
    minimum = float(config.get("minimum_duration") or 0)
    stretched = []
    for index, (start, end, text) in enumerate(cues):
        limit = cues[index + 1][0] if index + 1 < len(cues) else max(end, start + minimum)
        stretched.append((start, round(min(max(end, start + minimum), limit), 3), text))
    return stretched


def _cue(words: list[dict[str, Any]], max_chars: int | None) -> tuple[float, float, str]:
    return words[0]["start"], words[-1]["end"], "\n".join(_rows(words, max_chars))


def _rows(words: list[dict[str, Any]], max_chars: int | None) -> list[str]:
    rows: list[str] = []
    for word in (item["word"].strip() for item in words):
        if rows and (max_chars is None or len(rows[-1]) + 1 + len(word) <= max_chars):
            rows[-1] += " " + word
        else:
            rows.append(word)
    return rows


def _clock(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"
