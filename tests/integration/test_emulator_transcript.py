"""Emulated transcripts: deterministic per content, marked as emulated, timed across the whole audio, and
shaped by the request (languages, diarization, subtitles, translation, summary, sentences); and the audio
facts behind them (WAV header, ffprobe, size estimate)."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import srt
import webvtt
from tests.integration.emulator_fixtures import (
    api,
    check_schema,
    create,
    emulator,
    emulator_factory,
    make_wav,
    upload,
    wait_status,
)

from transcribed.emulator.media import probe

__all__ = ["api", "emulator", "emulator_factory"]  # fixtures used by name


def transcribe(api: httpx.Client, audio: Path, **options: Any) -> dict[str, Any]:
    job = wait_status(api, create(api, upload(api, audio)["audio_url"], **options)["id"])
    assert job["status"] == "done", job
    check_schema("PreRecordedResponse", job)
    result: dict[str, Any] = job["result"]
    return result


def test_transcripts_are_deterministic_per_content(api: httpx.Client, tmp_path: Path) -> None:
    first = transcribe(api, make_wav(tmp_path / "a.wav", seconds=20, tone=1))
    again = transcribe(api, make_wav(tmp_path / "copy.wav", seconds=20, tone=1))
    other = transcribe(api, make_wav(tmp_path / "b.wav", seconds=20, tone=2))
    assert first["transcription"] == again["transcription"]
    assert first["transcription"]["utterances"] != other["transcription"]["utterances"]


def test_a_transcript_is_marked_and_spans_the_audio(api: httpx.Client, tmp_path: Path) -> None:
    result = transcribe(api, make_wav(tmp_path / "long.wav", seconds=60))
    transcription = result["transcription"]
    utterances = transcription["utterances"]
    assert transcription["full_transcript"].startswith("[emulated transcript]")
    assert transcription["full_transcript"] == " ".join(utterance["text"] for utterance in utterances)
    assert transcription["languages"] == ["en"]
    assert len(utterances) > 5 and 45 < utterances[-1]["end"] <= 60
    previous_end = 0.0
    for utterance in utterances:
        assert utterance["language"] == "en" and utterance["channel"] == 0 and "speaker" not in utterance
        words = utterance["words"]
        assert utterance["text"] == "".join(word["word"] for word in words)
        assert not words[0]["word"].startswith(" ")
        assert all(word["word"].startswith(" ") for word in words[1:])
        for word in words:
            assert previous_end <= word["start"] <= word["end"] and 0 < word["confidence"] <= 1
            previous_end = word["end"]
    assert "subtitles" not in transcription and "sentences" not in transcription
    assert set(result) == {"metadata", "transcription"}


def test_a_very_short_file_still_gets_a_marked_transcript(api: httpx.Client, tmp_path: Path) -> None:
    result = transcribe(api, make_wav(tmp_path / "blip.wav", seconds=0.5))
    utterances = result["transcription"]["utterances"]
    assert utterances[0]["text"].startswith("[emulated transcript]")
    assert utterances[-1]["end"] <= 0.5


def test_languages_and_speakers_follow_the_request(api: httpx.Client, tmp_path: Path) -> None:
    audio = make_wav(tmp_path / "talk.wav", seconds=90)
    forced = transcribe(api, audio, language_config={"languages": ["fr"]})
    assert forced["transcription"]["languages"] == ["fr"]
    assert {u["language"] for u in forced["transcription"]["utterances"]} == {"fr"}
    switching = transcribe(api, audio, language_config={"languages": ["de", "it"], "code_switching": True})
    assert set(switching["transcription"]["languages"]) == {"de", "it"}
    diarized = transcribe(api, audio, diarization=True, diarization_config={"number_of_speakers": 3})
    speakers = [utterance["speaker"] for utterance in diarized["transcription"]["utterances"]]
    assert speakers[0] == 0 and set(speakers) == {0, 1, 2}
    first_seen = list(dict.fromkeys(speakers))
    assert first_seen == sorted(first_seen)  # numbered by order of first appearance


def test_subtitles_parse_as_srt_and_vtt(api: httpx.Client, tmp_path: Path) -> None:
    result = transcribe(api, make_wav(tmp_path / "talk.wav", seconds=30), subtitles=True,
                        subtitles_config={"formats": ["srt", "vtt"], "maximum_characters_per_row": 20,
                                          "maximum_rows_per_caption": 2, "maximum_duration": 3})
    rendered = {item["format"]: item["subtitles"] for item in result["transcription"]["subtitles"]}
    cues = list(srt.parse(rendered["srt"]))
    assert cues and " --> " in rendered["srt"] and "," in rendered["srt"].splitlines()[1]
    for cue in cues:
        lines = cue.content.split("\n")
        assert len(lines) <= 2 and all(len(line) <= 20 or " " not in line for line in lines)
        assert (cue.end - cue.start).total_seconds() <= 3.001
    assert rendered["vtt"].startswith("WEBVTT\n\n")
    vtt = webvtt.from_buffer(io.StringIO(rendered["vtt"]))
    assert [caption.text for caption in vtt] == [cue.content for cue in cues]


def test_translation_summary_and_sentences_are_added_when_asked(api: httpx.Client, tmp_path: Path) -> None:
    result = transcribe(api, make_wav(tmp_path / "talk.wav", seconds=30), translation=True,
                        translation_config={"target_languages": ["fr", "es"]}, summarization=True,
                        summarization_config={"type": "bullet_points"}, sentences=True, subtitles=True,
                        sentiment_analysis=True, named_entity_recognition=True, audio_to_llm=True,
                        audio_to_llm_config={"prompts": ["Who spoke?"]})
    translations = result["translation"]["results"]
    assert [item["languages"] for item in translations] == [["fr"], ["es"]]
    assert translations[0]["full_transcript"].startswith("[emulated translation to fr]")
    assert {u["language"] for u in translations[1]["utterances"]} == {"es"}
    assert translations[0]["subtitles"][0]["format"] == "srt"
    assert result["summarization"]["results"].startswith("- [emulated summary]")
    assert result["summarization"]["success"] is True
    sentences = result["transcription"]["sentences"][0]["results"]
    assert sentences == [u["text"] for u in result["transcription"]["utterances"]]
    assert result["audio_to_llm"]["results"][0]["results"]["prompt"] == "Who spoke?"
    assert result["sentiment_analysis"]["results"] and result["named_entity_recognition"]["results"] == []


def test_wav_headers_give_exact_facts(tmp_path: Path) -> None:
    facts = probe(make_wav(tmp_path / "a.wav", seconds=2.25, channels=2, rate=8000), "a.wav")
    assert (facts.duration, facts.channels, facts.extension) == (2.25, 2, "wav")
    streaming = tmp_path / "streaming.wav"
    data = make_wav(tmp_path / "b.wav", seconds=1.0).read_bytes()
    streaming.write_bytes(data[:40] + struct.pack("<I", 0xFFFFFFFF) + data[44:])  # unknown data length
    assert probe(streaming, "streaming.wav").duration == 1.0


def test_without_ffprobe_the_duration_is_estimated_from_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    blob = tmp_path / "x.mp3"
    blob.write_bytes(b"ID3" + bytes(31_997))
    facts = probe(blob, "x.mp3")
    assert (facts.duration, facts.channels, facts.extension) == (2.0, 1, "mp3")


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg to make a compressed file")
def test_ffprobe_reads_compressed_audio(tmp_path: Path) -> None:
    source = make_wav(tmp_path / "a.wav", seconds=4.0, channels=2)
    target = tmp_path / "a.ogg"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(source), "-c:a", "libvorbis", str(target)],
                   check=True, timeout=60)
    facts = probe(target, "a.ogg")
    assert facts.channels == 2 and facts.extension == "ogg" and abs(facts.duration - 4.0) < 0.1
