"""outputs/publish.py: a done job body in, the configured files beside the source out."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import srt
import webvtt

from transcribed.config import OutputConfig
from transcribed.gladia.result import parse_job
from transcribed.outputs.publish import publish

TEXT = "one two three four five six seven eight nine ten"


def done_body(*, subtitles_config: dict[str, Any] | None = None) -> dict[str, Any]:
    words = [
        {"word": ("" if index == 0 else " ") + token, "start": index * 0.5, "end": index * 0.5 + 0.4,
         "confidence": 0.9}
        for index, token in enumerate(TEXT.split(" "))
    ]
    return {
        "id": "job-1",
        "status": "done",
        "request_params": {"diarization": False, "subtitles_config": subtitles_config or {}},
        "result": {
            "metadata": {"audio_duration": 5.0},
            "transcription": {
                "languages": ["en"],
                "full_transcript": "one two three four five six seven eight nine ten",
                "utterances": [{"words": words, "text": "one two three four five six seven eight nine ten",
                                "language": "en", "start": 0.0, "end": 4.9, "confidence": 0.9, "channel": 0}],
            },
        },
    }


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "inbox" / "meeting.m4a"
    path.parent.mkdir()
    path.write_bytes(b"audio")
    return path


def test_publish_writes_every_configured_format_beside_the_source(source: Path) -> None:
    body = done_body(subtitles_config={"maximum_characters_per_row": 10, "maximum_rows_per_caption": 1})
    config = OutputConfig(formats=("txt", "srt", "vtt", "json", "md"))
    report = publish(parse_job(body), source, source.parent, config, ours={}, owner_of=lambda path: None)
    folder = source.parent
    assert sorted(path.name for path in report.written) == [
        "meeting.json", "meeting.md", "meeting.srt", "meeting.txt", "meeting.vtt",
    ]
    assert json.loads((folder / "meeting.json").read_text(encoding="utf-8")) == body
    cues = list(srt.parse((folder / "meeting.srt").read_text(encoding="utf-8")))
    assert len(cues) > 1 and all(len(cue.content) <= 10 and "\n" not in cue.content for cue in cues)
    assert len(list(webvtt.from_buffer(io.StringIO((folder / "meeting.vtt").read_text(encoding="utf-8"))))) == len(cues)


def test_publishing_again_after_a_crash_before_the_ledger_recorded_takes_the_files_over(source: Path) -> None:
    view = parse_job(done_body())
    first = publish(view, source, source.parent, OutputConfig(), ours={}, owner_of=lambda path: None)
    # The ledger never learnt of `first`: the same call again must neither conflict nor rewrite.
    inodes = {path: path.stat().st_ino for path in first.written}
    again = publish(view, source, source.parent, OutputConfig(), ours={}, owner_of=lambda path: None)
    assert again.conflicts == [] and again.written == first.written
    assert {path: path.stat().st_ino for path in again.written} == inodes


def test_publish_refuses_a_job_that_is_not_done(source: Path) -> None:
    view = parse_job({"id": "job-1", "status": "processing"})
    with pytest.raises(ValueError, match="no result"):
        publish(view, source, source.parent, OutputConfig(), ours={}, owner_of=lambda path: None)
