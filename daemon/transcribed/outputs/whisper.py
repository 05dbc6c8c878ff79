"""Pure rendering of a transcript in whisper-asr-webservice's answer forms: srt, vtt, txt, json, tsv.

`render_answer(transcript, output, limits)` returns (text, media type). srt and vtt are the daemon's own
subtitles (outputs.subtitles), txt its plain text; json is whisper's result shape ({"text", "segments":
[{"id", "start", "end", "text", "words"}], "language"}); tsv is whisper's ("start\\tend\\ttext" in
milliseconds, one row per utterance). No I/O.
"""

from __future__ import annotations

import json

from transcribed.gladia.result import Transcript
from transcribed.outputs.render import render_txt
from transcribed.outputs.subtitles import SubtitleLimits, render_srt, render_vtt

__all__ = ["render_answer"]

_TYPES = {"srt": "text/plain; charset=utf-8", "vtt": "text/vtt; charset=utf-8", "txt": "text/plain; charset=utf-8",
          "tsv": "text/tab-separated-values; charset=utf-8", "json": "application/json"}


def render_answer(transcript: Transcript, output: str, limits: SubtitleLimits) -> tuple[str, str]:
    """Given a transcript (or a translation) and one of srt, vtt, txt, json, tsv, return (body, media type).
    Raise ValueError for another output name."""
    if output == "srt":
        text = render_srt(transcript, limits)
    elif output == "vtt":
        text = render_vtt(transcript, limits)
    elif output == "txt":
        text = render_txt(transcript)
    elif output == "json":
        text = json.dumps(_whisper_json(transcript), ensure_ascii=False)
    elif output == "tsv":
        rows = ["start\tend\ttext"]
        for utterance in transcript.utterances:
            cleaned = " ".join(utterance.text.replace("\t", " ").split())
            rows.append(f"{round(utterance.start * 1000)}\t{round(utterance.end * 1000)}\t{cleaned}")
        text = "\n".join(rows) + "\n"
    else:
        raise ValueError(f"unknown output {output!r}")
    return text, _TYPES[output]


def _whisper_json(transcript: Transcript) -> dict[str, object]:
    segments = [{
        "id": index,
        "start": utterance.start,
        "end": utterance.end,
        "text": " " + utterance.text.strip(),
        "words": [{"word": " " + word.text, "start": word.start, "end": word.end, "probability": word.confidence}
                  for word in utterance.words],
    } for index, utterance in enumerate(transcript.utterances)]
    language = transcript.languages[0] if transcript.languages else None
    return {"text": transcript.full_transcript, "segments": segments, "language": language}
