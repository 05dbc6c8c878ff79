"""outputs/render.py and outputs/subtitles.py: the rules a viewer of the files would notice, as tables and
properties (the golden files show whole documents)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import srt
import webvtt
from hypothesis import given, settings
from hypothesis import strategies as st

from transcribed.gladia.result import JobView, Transcript, Utterance, Word, parse_job
from transcribed.outputs.render import FORMATS, SubtitleLimits, render, render_json, render_md, render_txt
from transcribed.outputs.subtitles import join_words, render_srt, render_vtt


def make_utterance(
    words: list[tuple[str, float, float]], *, speaker: int | None = None, text: str | None = None, channel: int = 0
) -> Utterance:
    items = tuple(Word(token, start, end, 0.9) for token, start, end in words)
    return Utterance(
        start=items[0].start if items else 0.0,
        end=items[-1].end if items else 0.0,
        text=text if text is not None else " ".join(word.text for word in items),
        language="en",
        channel=channel,
        speaker=speaker,
        confidence=0.9,
        words=items,
    )


def make_transcript(*utterances: Utterance, subtitles: dict[str, str] | None = None) -> Transcript:
    return Transcript(
        full_transcript=" ".join(u.text for u in utterances),
        languages=("en",),
        utterances=tuple(utterances),
        subtitles=subtitles or {},
    )


def body_with(utterances: list[dict[str, Any]], **result: Any) -> dict[str, Any]:
    return {
        "id": "job-1",
        "status": "done",
        "result": {
            "metadata": {"audio_duration": 10.0},
            "transcription": {"languages": ["en"], "full_transcript": "x", "utterances": utterances},
            **result,
        },
    }


@pytest.mark.parametrize(
    ("request_params", "expected"),
    [
        (None, SubtitleLimits()),
        ({}, SubtitleLimits()),
        ({"subtitles_config": "nonsense"}, SubtitleLimits()),
        (
            {"subtitles_config": {"maximum_characters_per_row": 32, "maximum_rows_per_caption": 1,
                                  "maximum_duration": 5, "minimum_duration": 0.5}},
            SubtitleLimits(32, 1, 5.0, 0.5),
        ),
        # Out of Gladia's accepted ranges, or the wrong type: the default stays.
        (
            {"subtitles_config": {"maximum_characters_per_row": 0, "maximum_rows_per_caption": 6,
                                  "maximum_duration": 31, "minimum_duration": -1}},
            SubtitleLimits(),
        ),
        (
            {"subtitles_config": {"maximum_characters_per_row": 20.5, "maximum_rows_per_caption": True,
                                  "maximum_duration": "5", "minimum_duration": float("nan")}},
            SubtitleLimits(),
        ),
        # A minimum longer than the maximum is capped at the maximum.
        ({"subtitles_config": {"maximum_duration": 2, "minimum_duration": 3}}, SubtitleLimits(42, 2, 2.0, 2.0)),
    ],
)
def test_limits_come_from_the_requests_subtitles_config(request_params: Any, expected: SubtitleLimits) -> None:
    assert SubtitleLimits.from_request(request_params) == expected


@pytest.mark.parametrize(
    ("parts", "joined"),
    [
        (["Hello,", "world."], "Hello, world."),
        (["Hello", ",", "world", "!"], "Hello, world!"),
        (["こんにちは", "、", "世界"], "こんにちは、世界"),
        (["我们", "今天"], "我们今天"),
        (["Hello", "世界"], "Hello 世界"),
        (["สวัสดี", "ครับ"], "สวัสดีครับ"),
        (["안녕하세요", "여러분"], "안녕하세요 여러분"),  # Korean is written with spaces
        (["مرحبا", "بكم"], "مرحبا بكم"),
        (["", "a", ""], "a"),
    ],
)
def test_words_are_joined_the_way_the_language_is_written(parts: list[str], joined: str) -> None:
    assert join_words(parts) == joined


def test_timestamps_count_hours_past_99_minutes_and_past_99_hours() -> None:
    transcript = make_transcript(
        make_utterance([("late", 6000.25, 6001.0)]),
        make_utterance([("later", 360_000.0, 360_001.5)]),
    )
    assert "01:40:00,250 --> 01:40:01,250" in render_srt(transcript, SubtitleLimits())
    vtt = render_vtt(transcript, SubtitleLimits())
    assert "100:00:00.000 --> 100:00:01.500" in vtt
    assert len(list(webvtt.from_buffer(io.StringIO(vtt)))) == 2


def test_cue_text_cannot_break_the_file_format() -> None:
    transcript = make_transcript(make_utterance([("a --> b <script>&", 1.0, 2.0)], speaker=0))
    vtt = render_vtt(transcript, SubtitleLimits())
    assert "<v Speaker 1>a --&gt; b &lt;script&gt;&amp;" in vtt
    subtitles = render_srt(transcript, SubtitleLimits())
    assert "a -> b <script>&" in subtitles
    assert len(list(srt.parse(subtitles))) == 1


def test_newlines_inside_an_utterance_never_end_a_cue() -> None:
    transcript = make_transcript(make_utterance([("one", 1.0, 1.5), ("two", 1.5, 2.0)], text="one\n\ntwo"))
    assert render_srt(transcript, SubtitleLimits()) == "1\n00:00:01,000 --> 00:00:02,000\none two\n\n"


def test_empty_transcripts_are_valid_empty_files() -> None:
    empty = make_transcript()
    assert render_srt(empty, SubtitleLimits()) == ""
    assert render_vtt(empty, SubtitleLimits()) == "WEBVTT\n"
    assert render_txt(empty) == ""
    assert "No speech" in render_md(empty, audio_duration=0)


def test_diarized_text_is_a_paragraph_per_speaker_turn() -> None:
    transcript = make_transcript(
        make_utterance([("Hi.", 0.0, 0.5)], speaker=0),
        make_utterance([("Hello.", 1.0, 1.5)], speaker=1),
        make_utterance([("How", 2.0, 2.2), ("are", 2.2, 2.4), ("you?", 2.4, 2.6)], speaker=1),
        make_utterance([("Fine.", 3.0, 3.5)], speaker=0),
    )
    assert render_txt(transcript) == "Speaker 1: Hi.\n\nSpeaker 2: Hello. How are you?\n\nSpeaker 1: Fine.\n"


def test_undiarized_text_is_gladias_full_transcript() -> None:
    transcript = make_transcript(make_utterance([("Hi.", 0.0, 0.5)]), make_utterance([("Bye.", 1.0, 1.5)]))
    assert render_txt(transcript) == "Hi. Bye.\n"


def test_markdown_never_turns_speech_into_markup() -> None:
    transcript = make_transcript(make_utterance([("*bold* <b>x</b> [link](y) #tag", 0.0, 1.0)], speaker=0))
    document = render_md(transcript, audio_duration=1.0)
    assert "\\*bold\\* \\<b\\>x\\</b\\> \\[link\\](y) \\#tag" in document
    assert "**[00:00:00] Speaker 1:**" in document


def test_render_writes_each_format_once_json_only_for_the_transcript_and_the_summary_as_txt() -> None:
    translation = {"success": True, "is_empty": False, "exec_time": 1, "error": None, "results": [
        {"error": None, "languages": ["fr"], "full_transcript": "Salut", "utterances": []},
    ]}
    summary = {"success": True, "is_empty": False, "exec_time": 1, "error": None, "results": "Short."}
    view = parse_job(body_with([], translation=translation, summarization=summary))
    outputs = render(view, ["srt", "json", "srt", "txt"], SubtitleLimits())
    assert [(item.kind, item.language, item.format) for item in outputs] == [
        ("transcript", "en", "srt"),
        ("transcript", "en", "json"),
        ("transcript", "en", "txt"),
        ("translation", "fr", "srt"),
        ("translation", "fr", "txt"),
        ("summary", "en", "txt"),
    ]
    assert outputs[-1].text == "Short.\n"


def test_render_refuses_unknown_formats_and_jobs_without_a_result() -> None:
    view = parse_job(body_with([]))
    with pytest.raises(ValueError, match="unknown output formats"):
        render(view, ["docx"], SubtitleLimits())
    queued = JobView(id="j", status="queued", error_code=None, custom_metadata=None, result=None, raw={})
    with pytest.raises(ValueError, match="no result"):
        render(queued, FORMATS, SubtitleLimits())


def test_json_keeps_the_whole_body_and_replaces_non_finite_numbers() -> None:
    body = body_with([])
    body["request_params"] = {"subtitles_config": {"formats": ["srt"]}, "weird": float("nan")}
    body["x"] = "},{ and }, { inside a value"
    body["list"] = [{"a": "}, {"}, {"b": 1}]
    text = render_json(body)
    decoded = json.loads(text)
    assert decoded["request_params"]["weird"] is None
    assert decoded["x"] == body["x"] and decoded["list"] == body["list"]
    assert text.endswith("}\n")
    assert json.loads(render_json({"é": "日本語"})) == {"é": "日本語"}
    assert "日本語" in render_json({"text": "日本語"})


def test_gladias_own_vtt_is_used_and_gets_speaker_voices() -> None:
    own = "WEBVTT\n\n1\n00:00:00.500 --> 00:00:01.000\nHi there.\n"
    transcript = make_transcript(make_utterance([("Hi", 0.4, 0.6), ("there.", 0.6, 1.0)], speaker=1),
                                 subtitles={"vtt": own})
    expected = "WEBVTT\n\n00:00:00.500 --> 00:00:01.000\n<v Speaker 2>Hi there.\n"
    assert render_vtt(transcript, SubtitleLimits()) == expected


def test_unparsable_gladia_subtitles_fall_back_to_the_words() -> None:
    transcript = make_transcript(make_utterance([("Hi.", 0.0, 1.0)]), subtitles={"srt": "garbage\n\n\n"})
    assert render_srt(transcript, SubtitleLimits()) == "1\n00:00:00,000 --> 00:00:01,000\nHi.\n\n"


# --- properties: any timeline gives valid files within the limits ------------------------------------

tokens = st.text(alphabet="abcdefghij 世界,.", min_size=1, max_size=15).map(str.strip).filter(bool)
timed_words = st.lists(
    st.tuples(tokens, st.floats(0, 20_000, allow_nan=False), st.floats(0, 12, allow_nan=False)),
    min_size=1,
    max_size=40,
)
limits_strategy = st.builds(
    SubtitleLimits,
    st.integers(16, 60),
    st.integers(1, 3),
    st.floats(1, 30, allow_nan=False),
    st.floats(0, 2, allow_nan=False),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(timed_words, st.none() | st.integers(0, 3)), max_size=6), limits_strategy)
def test_any_timeline_renders_valid_non_overlapping_cues_within_the_limits(
    utterances: list[tuple[list[tuple[str, float, float]], int | None]], limits: SubtitleLimits
) -> None:
    built = []
    for words, speaker in utterances:
        timeline = sorted(words, key=lambda item: item[1])
        built.append(make_utterance([(text, start, start + length) for text, start, length in timeline],
                                    speaker=speaker, text=" ".join(text for text, _, _ in timeline)))
    transcript = make_transcript(*built)
    subtitles = render_srt(transcript, limits)
    cues = list(srt.parse(subtitles))
    previous_end = 0.0
    for cue in cues:
        start, end = cue.start.total_seconds(), cue.end.total_seconds()
        assert end > start and start >= previous_end
        previous_end = end
        rows = cue.content.split("\n")
        assert len(rows) <= limits.maximum_rows_per_caption
        assert all(len(row) <= limits.maximum_characters_per_row for row in rows)
        assert end - start <= max(limits.maximum_duration, limits.minimum_duration) + 0.001
    vtt = render_vtt(transcript, limits)
    assert len(list(webvtt.from_buffer(io.StringIO(vtt)))) == len(cues)
