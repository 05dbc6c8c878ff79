"""A recording split into parts comes back as one transcript: media/stitch.py, golden-style, on job bodies
shaped like API.md §12.5, and through the real parser and renderers."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from transcribed.errors import MalformedResultError
from transcribed.gladia.result import parse_job
from transcribed.media import Part, stitch
from transcribed.media.stitch import SPEAKER_NOTE, shift_subtitles
from transcribed.outputs.render import SubtitleLimits, render


def word(text: str, start: float, end: float) -> dict[str, Any]:
    return {"word": text, "start": start, "end": end, "confidence": 0.9}


def utterance(text: str, start: float, end: float, speaker: int, language: str = "en") -> dict[str, Any]:
    words = text.split(" ")
    step = (end - start) / len(words)
    return {"text": text, "start": start, "end": end, "confidence": 0.95, "channel": 0, "speaker": speaker,
            "language": language,
            "words": [word((" " if i else "") + w, round(start + i * step, 3), round(start + (i + 1) * step, 3))
                      for i, w in enumerate(words)]}


def srt(*cues: tuple[str, str, str]) -> str:
    return "".join(f"{n}\n{a} --> {b}\n{text}\n\n" for n, (a, b, text) in enumerate(cues, start=1))


def body(job_id: str, duration: float, utterances: list[dict[str, Any]], *, srt_text: str | None = None,
         summary: str | None = None, translation: dict[str, Any] | None = None,
         completed: str = "2024-01-03T11:11:14.962Z") -> dict[str, Any]:
    transcription: dict[str, Any] = {
        "languages": ["en"], "utterances": utterances,
        "full_transcript": " ".join(u["text"] for u in utterances),
    }
    if srt_text is not None:
        transcription["subtitles"] = [{"format": "srt", "subtitles": srt_text},
                                      {"format": "vtt", "subtitles": "WEBVTT\n\n" + srt_text.replace(",", ".")}]
    result: dict[str, Any] = {
        "metadata": {"audio_duration": duration, "number_of_distinct_channels": 1, "billing_time": duration,
                     "transcription_time": 3.5},
        "transcription": transcription,
    }
    if summary is not None:
        result["summarization"] = {"success": True, "is_empty": False, "exec_time": 1.0, "error": None,
                                   "results": summary}
    if translation is not None:
        result["translation"] = translation
    return {
        "id": job_id, "request_id": f"G-{job_id}", "version": 2, "status": "done", "kind": "pre-recorded",
        "created_at": "2024-01-03T11:11:03.872Z", "completed_at": completed, "error_code": None,
        "custom_metadata": {"transcribed_attempt": job_id},
        "file": {"id": f"file-{job_id}", "filename": "meeting.ogg", "source": None, "audio_duration": duration,
                 "number_of_channels": 1},
        "request_params": {"audio_url": f"https://api.gladia.io/file/{job_id}", "diarization": True,
                           "subtitles": True, "subtitles_config": {"formats": ["srt", "vtt"]}},
        "result": result,
    }


def translated(language: str, utterances: list[dict[str, Any]], error: object = None) -> dict[str, Any]:
    return {"success": True, "is_empty": False, "exec_time": 2.0, "error": None, "results": [
        {"languages": [language], "full_transcript": " ".join(u["text"] for u in utterances),
         "utterances": utterances, "error": error}]}


PARTS = (Part(0, 0.0, 3000.0), Part(1, 3000.0, 6100.5), Part(2, 6100.5, 8400.0))
BODIES = (
    body("job-a", 3000.0, [utterance("Hello and welcome.", 0.21, 1.83, 0),
                           utterance("Thanks for having me.", 2.4, 3.38, 1)],
         srt_text=srt(("00:00:00,210", "00:00:01,830", "Hello and welcome."),
                      ("00:00:02,400", "00:00:03,380", "Thanks for having me.")),
         summary="A host welcomes a guest.",
         translation=translated("fr", [utterance("Bonjour.", 0.21, 1.83, 0, "fr")])),
    body("job-b", 3100.5, [utterance("Let us begin.", 1.0, 2.5, 0)],
         srt_text=srt(("00:00:01,000", "00:00:02,500", "Let us begin.")),
         summary="They begin.", translation=translated("fr", [utterance("Commençons.", 1.0, 2.5, 0, "en")]),
         completed="2024-01-03T11:40:00.000Z"),
    body("job-c", 2299.5, [utterance("Goodbye.", 2290.0, 2291.25, 1)],
         srt_text=srt(("00:38:10,000", "00:38:11,250", "Goodbye.")),
         summary="", translation={"success": False, "is_empty": True, "exec_time": 0.5, "results": None,
                                  "error": {"status_code": 500, "exception": "x", "message": "failed"}},
         completed="2024-01-03T11:20:00.000Z"),
)


def stitched() -> dict[str, Any]:
    # Out of order on purpose: parts may finish in any order.
    return stitch([(PARTS[2], BODIES[2]), (PARTS[0], BODIES[0]), (PARTS[1], BODIES[1])])


def test_utterances_and_words_are_offset_and_in_order() -> None:
    transcription = stitched()["result"]["transcription"]
    assert [(u["text"], u["start"], u["end"], u["speaker"]) for u in transcription["utterances"]] == [
        ("Hello and welcome.", 0.21, 1.83, 0),
        ("Thanks for having me.", 2.4, 3.38, 1),
        ("Let us begin.", 3001.0, 3002.5, 0),
        ("Goodbye.", 8390.5, 8391.75, 1),
    ]
    words = transcription["utterances"][2]["words"]
    assert [(w["word"], w["start"], w["end"]) for w in words] == [
        ("Let", 3001.0, 3001.5), (" us", 3001.5, 3002.0), (" begin.", 3002.0, 3002.5)]
    assert transcription["full_transcript"] == \
        "Hello and welcome. Thanks for having me. Let us begin. Goodbye."


def test_gladia_subtitles_are_shifted_and_renumbered() -> None:
    files = {s["format"]: s["subtitles"] for s in stitched()["result"]["transcription"]["subtitles"]}
    assert files["srt"] == (
        "1\n00:00:00,210 --> 00:00:01,830\nHello and welcome.\n\n"
        "2\n00:00:02,400 --> 00:00:03,380\nThanks for having me.\n\n"
        "3\n00:50:01,000 --> 00:50:02,500\nLet us begin.\n\n"
        "4\n02:19:50,500 --> 02:19:51,750\nGoodbye.\n")
    assert files["vtt"] == (
        "WEBVTT\n\n"
        "1\n00:00:00.210 --> 00:00:01.830\nHello and welcome.\n\n"
        "2\n00:00:02.400 --> 00:00:03.380\nThanks for having me.\n\n"
        "3\n00:50:01.000 --> 00:50:02.500\nLet us begin.\n\n"
        "4\n02:19:50.500 --> 02:19:51.750\nGoodbye.\n")


def test_a_subtitle_format_missing_from_a_part_is_left_to_the_renderers() -> None:
    bodies = copy.deepcopy(BODIES)
    del bodies[1]["result"]["transcription"]["subtitles"][0]      # part 1 has no srt
    result = stitch(list(zip(PARTS, bodies, strict=True)))["result"]
    assert [s["format"] for s in result["transcription"]["subtitles"]] == ["vtt"]


def test_metadata_sums_durations_and_records_the_parts() -> None:
    job = stitched()
    metadata = job["result"]["metadata"]
    assert metadata["audio_duration"] == 8400.0
    assert metadata["billing_time"] == 8400.0
    assert metadata["transcription_time"] == 10.5
    assert job["file"]["audio_duration"] == 8400.0
    assert metadata["transcribed"]["parts"] == [
        {"index": 0, "start": 0.0, "end": 3000.0, "job_id": "job-a"},
        {"index": 1, "start": 3000.0, "end": 6100.5, "job_id": "job-b"},
        {"index": 2, "start": 6100.5, "end": 8400.0, "job_id": "job-c"},
    ]
    assert SPEAKER_NOTE in metadata["transcribed"]["note"]
    assert "cannot be matched across parts" in metadata["transcribed"]["note"]
    assert (job["id"], job["status"], job["completed_at"]) == ("job-a", "done", "2024-01-03T11:40:00.000Z")


def test_translations_are_stitched_per_language_and_gaps_are_recorded() -> None:
    result = stitched()["result"]
    block = result["translation"]
    assert (block["success"], block["error"], block["exec_time"]) == (True, None, 4.5)
    [french] = block["results"]
    assert [(u["text"], u["start"]) for u in french["utterances"]] == [("Bonjour.", 0.21), ("Commençons.", 3001.0)]
    assert french["full_transcript"] == "Bonjour. Commençons."
    assert result["metadata"]["transcribed"]["incomplete_translations"] == {"fr": [2]}


def test_summaries_are_joined() -> None:
    summary = stitched()["result"]["summarization"]
    assert summary["results"] == "A host welcomes a guest.\n\nThey begin."
    assert summary["success"] is True


def test_timed_sentences_and_unknown_add_ons_are_merged() -> None:
    bodies = copy.deepcopy(BODIES[:2])
    for index, item in enumerate(bodies):
        item["result"]["transcription"]["sentences"] = [{"success": True, "is_empty": False, "exec_time": 0.1,
                                                         "error": None, "results": [
                                                             {"sentence": f"S{index}.", "start": 1.0, "end": 2.0}]}]
        item["result"]["chapterization"] = {"success": True, "is_empty": False, "exec_time": 0.2, "error": None,
                                            "results": [{"headline": f"H{index}"}]}
    result = stitch(list(zip(PARTS[:2], bodies, strict=True)))["result"]
    [sentences] = result["transcription"]["sentences"]
    assert [(s["sentence"], s["start"]) for s in sentences["results"]] == [("S0.", 1.0), ("S1.", 3001.0)]
    assert [c["headline"] for c in result["chapterization"]["results"]] == ["H0", "H1"]
    assert "incomplete_translations" not in result["metadata"]["transcribed"]


def test_the_stitched_body_parses_and_renders_like_any_job() -> None:
    job = parse_job(json.loads(json.dumps(stitched())))
    assert job.result is not None
    assert job.result.audio_duration == 8400.0
    assert list(job.result.translations) == ["fr"]
    files = {(r.kind, r.format): r.text for r in render(job, ["txt", "srt", "vtt", "json"], SubtitleLimits())}
    assert "02:19:50,500 --> 02:19:51,750" in files[("transcript", "srt")]
    assert "Goodbye." in files[("transcript", "txt")]
    assert "00:50:01.000" in files[("translation", "vtt")]
    assert '"transcribed"' in files[("transcript", "json")]


def test_one_part_is_its_own_transcript() -> None:
    job = stitch([(Part(0, 0.0, 3000.0), BODIES[0])])
    assert job["result"]["transcription"]["utterances"] == BODIES[0]["result"]["transcription"]["utterances"]
    assert BODIES[0]["result"]["metadata"].get("transcribed") is None   # the input is never modified


@pytest.mark.parametrize(("bad", "message"), [
    ({**BODIES[1], "status": "error", "result": None}, "part 1: job 'job-b' is not done"),
    ({**BODIES[1], "result": {"metadata": {}}}, "part 1: result.transcription"),
    ("not a body", "part 1"),
])
def test_a_part_that_is_not_a_done_job_is_refused_by_name(bad: Any, message: str) -> None:
    with pytest.raises(MalformedResultError, match=message):
        stitch([(PARTS[0], BODIES[0]), (PARTS[1], bad)])
    with pytest.raises(ValueError, match="nothing"):
        stitch([])


def test_subtitle_shifting_reads_either_separator_and_keeps_cue_settings() -> None:
    gladia_2025 = "1\n00:00:01.916 --> 00:00:06.139\nHello\n\n2\n00:00:07.000 --> 00:00:08.000\nAgain\n"
    assert shift_subtitles(gladia_2025, 60.0, "srt") == [
        "00:01:01,916 --> 00:01:06,139\nHello", "00:01:07,000 --> 00:01:08,000\nAgain"]
    vtt = "WEBVTT\n\nNOTE made by Gladia\n\nintro\n00:05.000 --> 00:06.500 align:start\n<v Speaker 1>Hi\n"
    assert shift_subtitles(vtt, 3600.0, "vtt") == ["intro\n01:00:05.000 --> 01:00:06.500 align:start\n<v Speaker 1>Hi"]
    assert shift_subtitles("\r\n1\r\n00:00:00,000 --> 00:00:01,000\r\nA\r\n", 0.5, "srt") == [
        "00:00:00,500 --> 00:00:01,500\nA"]
