"""Golden files: every format over tricky results, checked byte for byte and by independent parsers.

Regenerate after an intended change with `TRANSCRIBED_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_render_golden.py`
and review the diff of tests/unit/golden/ like code.
"""

from __future__ import annotations

import copy
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import srt
import webvtt

from transcribed.gladia.result import parse_job
from transcribed.outputs.render import FORMATS, Rendered, SubtitleLimits, render

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("TRANSCRIBED_UPDATE_GOLDEN") == "1"
LIMITS = SubtitleLimits()


def word(text: str, start: float, end: float) -> dict[str, Any]:
    return {"word": text, "start": start, "end": end, "confidence": 0.9}


def utterance(
    words: list[dict[str, Any]],
    *,
    speaker: int | None = None,
    channel: int = 0,
    language: str = "en",
    text: str | None = None,
    start: float | None = None,
    end: float | None = None,
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "words": words,
        "text": text if text is not None else "".join(w["word"] for w in words).strip(),
        "language": language,
        "start": start if start is not None else (words[0]["start"] if words else 0.0),
        "end": end if end is not None else (words[-1]["end"] if words else 0.0),
        "confidence": 0.9,
        "channel": channel,
    }
    if speaker is not None:
        item["speaker"] = speaker
    return item


def sentence(text: str, start: float, step: float = 0.4, **options: Any) -> dict[str, Any]:
    """An utterance whose words (with Gladia's leading spaces) follow each other `step` seconds apart."""
    words = []
    for index, token in enumerate(text.split()):
        begin = start + index * step
        words.append(word(("" if index == 0 else " ") + token, round(begin, 3), round(begin + step * 0.8, 3)))
    return utterance(words, **options)


def job(
    utterances: list[dict[str, Any]],
    *,
    languages: tuple[str, ...] = ("en",),
    full: str | None = None,
    subtitles: list[dict[str, str]] | None = None,
    translation: dict[str, Any] | None = None,
    summarization: dict[str, Any] | None = None,
    duration: float | None = None,
) -> dict[str, Any]:
    transcription: dict[str, Any] = {
        "languages": list(languages),
        "full_transcript": full if full is not None else " ".join(u["text"] for u in utterances),
        "utterances": utterances,
    }
    if subtitles is not None:
        transcription["subtitles"] = subtitles
    result: dict[str, Any] = {
        "metadata": {
            "audio_duration": duration if duration is not None else max([u["end"] for u in utterances] or [0.0]),
            "number_of_distinct_channels": 1,
            "billing_time": 1.0,
            "transcription_time": 1.0,
        },
        "transcription": transcription,
    }
    if translation is not None:
        result["translation"] = translation
    if summarization is not None:
        result["summarization"] = summarization
    return {
        "id": "45463597-20b7-4af7-b3b3-f5fb778203ab",
        "request_id": "G-45463597",
        "version": 2,
        "status": "done",
        "created_at": "2024-01-03T11:11:03.872Z",
        "completed_at": "2024-01-03T11:11:14.962Z",
        "custom_metadata": {"attempt": "a1"},
        "error_code": None,
        "kind": "pre-recorded",
        "file": {"id": "636c70f6", "filename": "clip.wav", "source": None, "audio_duration": 6.0,
                 "number_of_channels": 1},
        "request_params": {"audio_url": "https://api.gladia.io/file/636c70f6", "diarization": False},
        "result": result,
    }


def addon(results: Any) -> dict[str, Any]:
    return {"success": True, "is_empty": False, "exec_time": 0.5, "error": None, "results": results}


LONG = (
    "So what we decided last week was that the release goes out on Thursday, after the final review "
    "by the whole team, unless somebody finds a blocking problem in the installer or the documentation."
)


def case_empty() -> dict[str, Any]:
    return job([], languages=(), full="")


def case_one_word() -> dict[str, Any]:
    return job([utterance([word(" Hi.", 0.5, 0.5)])])


def case_leading_spaces() -> dict[str, Any]:
    body = job([sentence(LONG, 1.0, step=0.45)])
    body["result"]["transcription"]["utterances"][0]["text"] = "  " + LONG + "  "
    return body


def case_overlapping() -> dict[str, Any]:
    return job([
        sentence("I think we should start now", 0.0, speaker=0),
        sentence("Wait, not yet", 1.0, speaker=1),
        sentence("Same time", 1.0, speaker=2),
        utterance([word(" Zero", 5.0, 5.0)], speaker=0),
        utterance([word(" length", 5.0, 5.0)], speaker=1),
    ])


def case_three_hours() -> dict[str, Any]:
    return job(
        [
            sentence("Opening words", 0.0),
            sentence("Just before ninety-nine minutes", 5998.9),
            sentence("Past one hundred minutes", 6000.25),
            sentence("The very end", 10798.5),
        ],
        duration=10800.0,
    )


def case_rtl() -> dict[str, Any]:
    return job(
        [
            sentence("مرحبا بكم في الاجتماع", 0.0, speaker=0, language="ar"),
            sentence("شكرا جزيلا", 3.0, speaker=1, language="ar"),
            sentence("שלום לכולם וברוכים הבאים לפגישה השבועית שלנו היום בבוקר בשעה טובה", 5.0, speaker=0,
                     language="he"),
        ],
        languages=("ar", "he"),
    )


def case_cjk() -> dict[str, Any]:
    japanese = [word(" こんにちは", 0.0, 0.6), word("、", 0.6, 0.7), word(" ン", 0.7, 0.9), word("世界", 0.9, 1.4)]
    long_chinese = "我们今天讨论的是下一个版本的发布计划以及测试安排还有文档的更新和翻译工作的进度情况请大家准备好"
    chinese_words = [
        word(long_chinese[index : index + 2], 2.0 + index * 0.25, 2.0 + index * 0.25 + 0.2)
        for index in range(0, len(long_chinese), 2)
    ]
    return job(
        [
            utterance(japanese, language="ja", text="こんにちは、ン世界"),
            utterance(chinese_words, language="zh", text=long_chinese),
            utterance([], language="zh", text=long_chinese, start=20.0, end=30.0),
        ],
        languages=("zh", "ja"),
    )


def case_diarized() -> dict[str, Any]:
    return job([
        sentence("Hello, thanks for joining.", 0.21, speaker=0),
        sentence("Happy to be here.", 2.4, speaker=1),
        sentence("Shall we begin?", 4.0, speaker=1),
        sentence("Yes.", 5.5, speaker=0),
    ])


def case_not_diarized() -> dict[str, Any]:
    return job([sentence("Hello, thanks for joining.", 0.21), sentence(LONG, 2.5)])


def case_multichannel() -> dict[str, Any]:
    return job([sentence("Left channel speaks.", 0.0, channel=0), sentence("Right answers.", 1.5, channel=1)])


def case_translated() -> dict[str, Any]:
    body = job([sentence("Good morning everyone.", 0.0, speaker=0), sentence("Good morning.", 2.0, speaker=1)])
    body["result"]["translation"] = addon([
        {"error": None, "languages": ["fr"], "full_transcript": "Bonjour à tous. Bonjour.",
         "utterances": [sentence("Bonjour à tous.", 0.0, speaker=0, language="fr"),
                        sentence("Bonjour.", 2.0, speaker=1, language="fr")]},
        {"error": None, "languages": ["ja"], "full_transcript": "皆さん、おはようございます。おはよう。",
         "utterances": [utterance([word("皆さん、", 0.0, 0.5), word("おはようございます。", 0.5, 1.5)], speaker=0,
                                  language="ja"),
                        utterance([word("おはよう。", 2.0, 2.6)], speaker=1, language="ja")]},
        {"error": {"status_code": 500, "exception": "x", "message": "failed"}, "languages": ["de"],
         "full_transcript": "", "utterances": []},
    ])
    return body


def case_summary() -> dict[str, Any]:
    body = job([sentence("We ship on Thursday.", 0.0)])
    body["result"]["summarization"] = addon("- The release ships on Thursday.\n- <b>No</b> blockers & no delays.")
    return body


def case_gladia_subtitles() -> dict[str, Any]:
    """Gladia's own files: srt with "." separators, bad numbering, an overlap and a zero-length cue."""
    body = case_diarized()
    body["result"]["transcription"]["subtitles"] = [
        {"format": "srt", "subtitles": (
            "7\n00:00:00.210 --> 00:00:02.500\nHello, thanks\nfor joining.\n\n"
            "3\n00:00:02.400 --> 00:00:03.380\nHappy to be here.\n\n"
            "9\n00:00:04.000 --> 00:00:04.000\nShall we begin?\n\n"
            "10\r\n01:40:00.5 --> 01:40:01,250\r\nYes.\r\n"
        )},
        {"format": "vtt", "subtitles": (
            "WEBVTT\n\nNOTE made by Gladia\n\n1\n00:00.210 --> 00:00:01.830 align:start\nHello, thanks for joining.\n\n"
            "2\n00:00:02.400 --> 00:00:03.380\nHappy &amp; here.\n"
        )},
    ]
    return body


CASES: dict[str, Callable[[], dict[str, Any]]] = {
    name.removeprefix("case_"): function for name, function in globals().items() if name.startswith("case_")
}


def file_name(item: Rendered) -> str:
    language = item.language or "none"
    return f"{item.kind}.{language}.{item.format}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    body = CASES[case]()
    original = copy.deepcopy(body)
    outputs = render(parse_job(body), FORMATS, LIMITS)
    assert body == original, "rendering must not modify the job body"
    directory = GOLDEN / case
    produced = {file_name(item): item.text for item in outputs}
    assert len(produced) == len(outputs), "two outputs of one job share a kind, language and format"
    if UPDATE:
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.iterdir():
            stale.unlink()
        for name, text in produced.items():
            (directory / name).write_bytes(text.encode("utf-8"))
    expected = {path.name: path.read_bytes().decode("utf-8") for path in directory.iterdir()}
    assert sorted(produced) == sorted(expected)
    for name, text in produced.items():
        assert text == expected[name], f"{case}/{name} differs from its golden file"
    for item in outputs:
        check_valid(item, body)


def check_valid(item: Rendered, body: dict[str, Any]) -> None:
    if item.format == "srt":
        cues = list(srt.parse(item.text))  # raises on anything malformed
        assert [cue.index for cue in cues] == list(range(1, len(cues) + 1))
        check_timeline([(cue.start.total_seconds(), cue.end.total_seconds()) for cue in cues])
        assert srt.compose(cues, reindex=False) == item.text
    elif item.format == "vtt":
        assert item.text.startswith("WEBVTT\n")
        captions = list(webvtt.from_buffer(io.StringIO(item.text)))
        check_timeline([
            (caption.start_time.in_milliseconds() / 1000, caption.end_time.in_milliseconds() / 1000)
            for caption in captions
        ])
        assert all("-->" not in caption.raw_text for caption in captions)
    elif item.format == "json":
        assert json.loads(item.text) == body
    if item.format in ("txt", "md", "srt", "vtt"):
        assert item.text == "" or item.text.endswith("\n")
        assert "\r" not in item.text


def check_timeline(times: list[tuple[float, float]]) -> None:
    previous_end = 0.0
    for start, end in times:
        assert end > start, "zero-length cue"
        assert start >= previous_end, "overlapping cues"
        previous_end = end


def test_every_case_has_golden_files() -> None:
    assert sorted(path.name for path in GOLDEN.iterdir() if path.is_dir()) == sorted(CASES)
