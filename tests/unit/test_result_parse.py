"""gladia/result.py: the typed view of a job body, tolerant of extra keys, strict about shapes."""

from __future__ import annotations

import contextlib
import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transcribed.errors import MalformedResultError
from transcribed.gladia.result import JobView, parse_job, parse_result
from transcribed.outputs.render import FORMATS, SubtitleLimits, render

DONE: dict[str, Any] = {
    "id": "45463597-20b7-4af7-b3b3-f5fb778203ab",
    "request_id": "G-45463597",
    "version": 2,
    "status": "done",
    "created_at": "2024-01-03T11:11:03.872Z",
    "completed_at": "2024-01-03T11:11:14.962Z",
    "custom_metadata": {"job_ref": "rec-2024-0001"},
    "error_code": None,
    "kind": "pre-recorded",
    "file": {"id": "636c70f6", "filename": "meeting.wav", "source": None, "audio_duration": 6.02,
             "number_of_channels": 1},
    "request_params": {"audio_url": "https://api.gladia.io/file/636c70f6", "diarization": True},
    "result": {
        "metadata": {"audio_duration": 6.016, "number_of_distinct_channels": 1, "billing_time": 6.016,
                     "transcription_time": 3.412},
        "transcription": {
            "languages": ["en"],
            "full_transcript": "Hello, thanks for joining. Happy to be here.",
            "utterances": [
                {"words": [{"word": "Hello,", "start": 0.21, "end": 0.69, "confidence": 0.98},
                           {"word": " thanks", "start": 0.81, "end": 1.12, "confidence": 0.95}],
                 "text": "Hello, thanks", "language": "en", "start": 0.21, "end": 1.12, "confidence": 0.96,
                 "channel": 0, "speaker": 0},
                {"words": [{"word": " Happy", "start": 2.4, "end": 2.71, "confidence": 0.94}],
                 "text": "Happy", "language": "en", "start": 2.4, "end": 2.71, "confidence": 0.96,
                 "channel": 0, "speaker": 1},
            ],
            "subtitles": [{"format": "srt", "subtitles": "1\n00:00:00,210 --> 00:00:01,120\nHello, thanks\n"}],
        },
        "translation": {"success": True, "is_empty": False, "exec_time": 1.0, "error": None, "results": [
            {"error": None, "languages": ["fr"], "full_transcript": "Bonjour", "utterances": []},
        ]},
        "summarization": {"success": True, "is_empty": False, "exec_time": 1.1, "error": None,
                          "results": "  A greeting.  "},
        "sentiment_analysis": {"success": True, "results": "positive"},
    },
}


def done() -> dict[str, Any]:
    return copy.deepcopy(DONE)


def test_a_done_job_is_read_field_by_field() -> None:
    view = parse_job(done())
    assert (view.id, view.status, view.error_code) == ("45463597-20b7-4af7-b3b3-f5fb778203ab", "done", None)
    assert view.custom_metadata == {"job_ref": "rec-2024-0001"}
    assert view.raw["request_params"]["diarization"] is True
    result = view.result
    assert result is not None
    assert result.audio_duration == 6.016
    assert result.transcript.languages == ("en",)
    first, second = result.transcript.utterances
    assert [word.text for word in first.words] == ["Hello,", "thanks"]
    assert (first.speaker, second.speaker, first.channel, first.language) == (0, 1, 0, "en")
    assert result.transcript.subtitles == {"srt": "1\n00:00:00,210 --> 00:00:01,120\nHello, thanks\n"}
    assert list(result.translations) == ["fr"]
    assert result.translations["fr"].full_transcript == "Bonjour"
    assert result.summary == "A greeting."
    assert result.raw["sentiment_analysis"]["results"] == "positive"


def test_parse_result_reads_the_result_object_alone() -> None:
    assert parse_result(done()["result"]).transcript.full_transcript.startswith("Hello")


@pytest.mark.parametrize("status", ["queued", "processing", "error", "archived-by-a-future-api"])
def test_jobs_that_are_not_done_have_no_result(status: str) -> None:
    body = done()
    body.update(status=status, error_code=500 if status == "error" else None, file=None, request_params=None)
    view = parse_job(body)
    assert view.status == status and view.result is None
    assert view.error_code == (500 if status == "error" else None)


def test_extra_keys_and_missing_optional_fields_are_tolerated() -> None:
    body = done()
    body["new_top_level_field"] = {"anything": [1, 2]}
    utterance = body["result"]["transcription"]["utterances"][0]
    for key in ("confidence", "channel", "language", "speaker"):
        del utterance[key]
    del utterance["words"][0]["confidence"]
    del body["error_code"], body["custom_metadata"]
    del body["result"]["transcription"]["subtitles"]
    view = parse_job(body)
    assert view.result is not None
    first = view.result.transcript.utterances[0]
    assert (first.confidence, first.channel, first.language, first.speaker) == (0.0, 0, None, None)
    assert view.result.transcript.subtitles == {}
    assert (view.error_code, view.custom_metadata) == (None, None)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"success": False, "results": None}, {}),
        ({"results": None}, {}),
        ({"results": [{"error": {"message": "no"}, "languages": ["de"], "full_transcript": "", "utterances": []}]},
         {}),
        ({"results": [{"error": None, "languages": [], "full_transcript": "x", "utterances": []}]}, {}),
    ],
)
def test_failed_translations_are_left_out_not_fatal(change: dict[str, Any], expected: dict[str, Any]) -> None:
    body = done()
    body["result"]["translation"].update(change)
    view = parse_job(body)
    assert view.result is not None and dict(view.result.translations) == expected


@pytest.mark.parametrize("summary", [{"success": False, "results": None}, {"results": "   "}, None])
def test_a_failed_or_empty_summary_is_none(summary: dict[str, Any] | None) -> None:
    body = done()
    if summary is None:
        del body["result"]["summarization"]
    else:
        body["result"]["summarization"].update(summary)
    view = parse_job(body)
    assert view.result is not None and view.result.summary is None


def _set(path: str, value: Any) -> Any:
    def change(body: dict[str, Any]) -> Any:
        target: Any = body
        keys = path.split(".")
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target[key]
        last: Any = int(keys[-1]) if isinstance(target, list) else keys[-1]
        if value is _DELETE:
            del target[last]
        else:
            target[last] = value
        return body

    return change


_DELETE = object()
_UTTERANCE = "result.transcription.utterances.0"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda body: [body], "body: expected an object, got a list"),
        (lambda body: "done", "body: expected an object, got a string"),
        (_set("id", _DELETE), "body.id: expected a string, got null"),
        (_set("status", 3), "body.status: expected a string, got a number"),
        (_set("error_code", "500"), "body.error_code: expected an integer or null"),
        (_set("error_code", True), "body.error_code: expected an integer or null, got a boolean"),
        (_set("custom_metadata", [1]), "body.custom_metadata: expected an object or null"),
        (_set("result", None), "body.result: a done job has no result"),
        (_set("result", "x"), "body.result: expected an object"),
        (_set("result.metadata", _DELETE), "body.result.metadata: expected an object, got null"),
        (_set("result.metadata.audio_duration", "6"), "body.result.metadata.audio_duration: expected a number"),
        (_set("result.transcription.utterances", {}), "utterances: expected a list, got an object"),
        (_set("result.transcription.full_transcript", None), "full_transcript: expected a string"),
        (_set("result.transcription.languages", ["en", 1]), "languages: expected a list of strings"),
        (_set(f"{_UTTERANCE}.start", "0.2"), "utterances[0].start: expected a number, got a string"),
        (_set(f"{_UTTERANCE}.start", float("nan")), "utterances[0].start: expected a finite number"),
        (_set(f"{_UTTERANCE}.end", float("inf")), "utterances[0].end: expected a finite number"),
        (_set(f"{_UTTERANCE}.end", 10**400), "utterances[0].end: number out of range"),
        (_set(f"{_UTTERANCE}.text", _DELETE), "utterances[0].text: expected a string, got null"),
        (_set(f"{_UTTERANCE}.words", None), "utterances[0].words: expected a list, got null"),
        (_set(f"{_UTTERANCE}.speaker", 1.5), "utterances[0].speaker: expected an integer or null"),
        (_set(f"{_UTTERANCE}.language", 7), "utterances[0].language: expected a string or null"),
        (_set(f"{_UTTERANCE}.words.0.word", None), "words[0].word: expected a string, got null"),
        (_set(f"{_UTTERANCE}.words.1", "thanks"), "words[1]: expected an object, got a string"),
        (_set("result.transcription.subtitles", "srt"), "subtitles: expected a list, got a string"),
        (_set("result.transcription.subtitles.0.subtitles", 1), "subtitles[0].subtitles: expected a string"),
        (_set("result.translation.results", {}), "translation.results: expected a list or null"),
        (_set("result.summarization.results", ["a"]), "summarization.results: expected a string or null"),
    ],
)
def test_malformed_bodies_are_reported_in_one_line(change: Any, reason: str) -> None:
    body = change(done())
    with pytest.raises(MalformedResultError) as caught:
        parse_job(body)
    message = str(caught.value)
    assert reason in message
    assert "\n" not in message and len(message) < 200


def test_the_result_of_a_parsed_job_renders_from_a_json_round_trip() -> None:
    view = parse_job(json.loads(json.dumps(DONE)))
    assert isinstance(view, JobView)
    assert {item.format for item in render(view, FORMATS, SubtitleLimits())} == set(FORMATS)


# --- fuzzing: hostile JSON never escapes as anything but MalformedResultError ------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_arbitrary_json_only_ever_raises_malformed(value: Any) -> None:
    for parse in (parse_job, parse_result):
        with contextlib.suppress(MalformedResultError):
            parse(value)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_real_bodies_parse_or_are_malformed_and_what_parses_renders(data: st.DataObject) -> None:
    body = done()
    for _ in range(data.draw(st.integers(1, 4))):
        paths = [path for path in _paths(body) if path]
        path = data.draw(st.sampled_from(paths))
        parent: Any = body
        for key in path[:-1]:
            parent = parent[key]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(json_values)
    try:
        view = parse_job(body)
    except MalformedResultError:
        return
    if view.result is not None:
        for item in render(view, FORMATS, SubtitleLimits()):
            assert isinstance(item.text, str)
