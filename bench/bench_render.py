"""Rendering every output format for a 3-hour, 30,000-word result, as a ratio to `json.loads` of that
result's JSON measured in the same run (target: at most 10x).

    .venv/bin/python bench/bench_render.py [--words 30000] [--repeat 5]

Prints the best of `repeat` runs for each step and the ratios. Parsing (`parse_job`) is shown apart from
rendering: the client parses a body once, whatever the number of formats.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable
from typing import Any

from transcribed.gladia.result import parse_job
from transcribed.outputs.render import FORMATS, SubtitleLimits, render

VOCABULARY = tuple(
    " ".join([
        "the of and to a in that is was he for it with as his on be at by I this had not are but from or",
        "have an they which one you were her all she there would their we him been has when who will more",
        "release installer documentation Thursday review meeting, question. answer? agreed. really",
    ]).split()
)


def synthetic_body(words: int, seed: int = 5) -> dict[str, Any]:
    """A diarized, 3-hour done job with `words` words in utterances of 5-25 words, Gladia's shape."""
    rng = random.Random(seed)
    duration = 3 * 3600.0
    step = duration / words
    utterances = []
    index = 0
    speaker = 0
    while index < words:
        count = min(words - index, rng.randint(5, 25))
        items = []
        for position in range(count):
            start = (index + position) * step
            token = rng.choice(VOCABULARY)
            items.append({
                "word": token if position == 0 else " " + token,
                "start": round(start, 3),
                "end": round(start + step * 0.8, 3),
                "confidence": round(rng.uniform(0.6, 1.0), 3),
            })
        utterances.append({
            "words": items,
            "text": "".join(item["word"] for item in items).strip(),
            "language": "en",
            "start": items[0]["start"],
            "end": items[-1]["end"],
            "confidence": 0.9,
            "channel": 0,
            "speaker": speaker,
        })
        speaker = (speaker + rng.randint(0, 1)) % 3
        index += count
    return {
        "id": "45463597-20b7-4af7-b3b3-f5fb778203ab",
        "request_id": "G-45463597",
        "version": 2,
        "status": "done",
        "created_at": "2024-01-03T11:11:03.872Z",
        "completed_at": "2024-01-03T14:11:14.962Z",
        "custom_metadata": {"attempt": "bench"},
        "error_code": None,
        "kind": "pre-recorded",
        "file": {"id": "636c70f6", "filename": "long.wav", "source": None, "audio_duration": duration,
                 "number_of_channels": 1},
        "request_params": {"audio_url": "https://api.gladia.io/file/636c70f6", "diarization": True},
        "result": {
            "metadata": {"audio_duration": duration, "number_of_distinct_channels": 1,
                         "billing_time": duration, "transcription_time": 300.0},
            "transcription": {
                "languages": ["en"],
                "full_transcript": " ".join(utterance["text"] for utterance in utterances),
                "utterances": utterances,
            },
        },
    }


def best_of(repeat: int, action: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - began)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=30_000)
    parser.add_argument("--repeat", type=int, default=5)
    arguments = parser.parse_args()

    text = json.dumps(synthetic_body(arguments.words))
    view = parse_job(json.loads(text))
    limits = SubtitleLimits()

    baseline = best_of(arguments.repeat, lambda: json.loads(text))
    parsing = best_of(arguments.repeat, lambda: parse_job(json.loads(text)))
    everything = best_of(arguments.repeat, lambda: render(view, FORMATS, limits))
    print(f"result JSON: {len(text) / 1e6:.1f} MB, {arguments.words} words, 3 h")
    print(f"json.loads (baseline)        {baseline * 1000:8.1f} ms   1.0x")
    print(f"json.loads + parse_job       {parsing * 1000:8.1f} ms  {parsing / baseline:4.1f}x")
    for name in FORMATS:
        took = best_of(arguments.repeat, lambda name=name: render(view, [name], limits))
        print(f"render {name:<22}{took * 1000:8.1f} ms  {took / baseline:4.1f}x")
    ratio = everything / baseline
    verdict = "ok" if ratio <= 10 else "OVER TARGET"
    print(f"render every format          {everything * 1000:8.1f} ms  {ratio:4.1f}x  (target <= 10x: {verdict})")


if __name__ == "__main__":
    main()
