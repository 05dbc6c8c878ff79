"""POST /v2/pre-recorded validation as the NestJS API does it: JSON only, the schema's types, enums and
ranges, the cross-field rules, class-validator style messages; and the request_params echo with defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.emulator_fixtures import api, check_error, create, emulator, emulator_factory, upload, wav

__all__ = ["api", "emulator", "emulator_factory", "wav"]  # fixtures used by name

AUDIO = "https://files.example.com/a.wav"


def problems(api: httpx.Client, body: Any) -> list[str]:
    response = api.post("/v2/pre-recorded", json=body)
    envelope = check_error(response, 400)
    assert envelope["message"] == "Invalid parameter(s). See validation_errors for more details."
    found: list[str] = envelope["validation_errors"]
    return found


@pytest.mark.parametrize(("body", "expected"), [
    ({}, ["audio_url should not be empty", "audio_url must be a URL address"]),
    ({"audio_url": "file.wav"}, ["audio_url must be a URL address"]),
    ({"audio_url": AUDIO, "languge": "en"}, ["property languge should not exist"]),
    ({"audio_url": AUDIO, "detect_language": True}, ["property detect_language should not exist"]),
    ({"audio_url": AUDIO, "diarization": "yes"}, ["diarization must be a boolean value"]),
    ({"audio_url": AUDIO, "model": "solaria-9"}, ["model must be one of the following values: solaria-1, solaria-3"]),
    ({"audio_url": AUDIO, "model": "solaria-3"},
     ["language_config.languages must contain exactly one language when model is solaria-3"]),
    ({"audio_url": AUDIO, "subtitles_config": {"maximum_rows_per_caption": 6, "maximum_duration": 0.5}},
     ["subtitles_config.maximum_duration must not be less than 1",
      "subtitles_config.maximum_rows_per_caption must not be greater than 5"]),
    ({"audio_url": AUDIO, "subtitles_config": {"formats": []}},
     ["subtitles_config.formats must contain at least 1 elements"]),
    ({"audio_url": AUDIO, "subtitles_config": {"formats": ["srt", "ass"]}},
     ["each value in subtitles_config.formats must be one of the following values: srt, vtt"]),
    ({"audio_url": AUDIO, "subtitles_config": {"colour": "red"}},
     ["property subtitles_config.colour should not exist"]),
    ({"audio_url": AUDIO, "diarization_config": {"number_of_speakers": 0, "max_speakers": 1.5}},
     ["diarization_config.max_speakers must be an integer number",
      "diarization_config.number_of_speakers must not be less than 1"]),
    ({"audio_url": AUDIO, "translation": True}, ["translation_config.target_languages should not be empty"]),
    ({"audio_url": AUDIO, "translation": True, "translation_config": {"target_languages": []}},
     ["translation_config.target_languages must contain at least 1 elements"]),
    ({"audio_url": AUDIO, "callback": True}, ["callback_config.url should not be empty"]),
    ({"audio_url": AUDIO, "callback": True, "callback_config": {"method": "GET"}},
     ["callback_config.url should not be empty",
      "callback_config.method must be one of the following values: POST, PUT"]),
    ({"audio_url": AUDIO, "summarization_config": {"type": "haiku"}},
     ["summarization_config.type must be one of the following values: general, bullet_points, concise"]),
    ({"audio_url": AUDIO, "custom_vocabulary_config": {"vocabulary": [{"intensity": 2}]}},
     ["custom_vocabulary_config.vocabulary.0 must be a string or an object with a value"]),
    ({"audio_url": AUDIO, "custom_metadata": {"note": "x" * 2000}},
     ["custom_metadata must be shorter than or equal to 2000 characters"]),
    ({"audio_url": AUDIO, "custom_metadata": "tag"}, ["custom_metadata must be an object"]),
])
def test_invalid_bodies_are_refused_with_every_problem(api: httpx.Client, body: Any, expected: list[str]) -> None:
    assert sorted(problems(api, body)) == sorted(expected)


def test_language_codes_are_checked(api: httpx.Client) -> None:
    found = problems(api, {"audio_url": AUDIO, "language_config": {"languages": ["en", "xx"]}})
    assert len(found) == 1
    assert found[0].startswith("each value in language_config.languages must be one of the following values: af,")


def test_only_json_objects_are_accepted(emulator: object, api: httpx.Client) -> None:
    form = api.post("/v2/pre-recorded", data={"audio_url": AUDIO})
    assert check_error(form, 400)["message"] == "Content-Type must be application/json"
    broken = api.post("/v2/pre-recorded", content=b"{not json", headers={"Content-Type": "application/json"})
    check_error(broken, 400)
    assert problems(api, ["audio_url"]) == ["request body must be a JSON object"]
    # The connection stays usable after each refusal (keep-alive).
    assert api.get("/v2/pre-recorded").status_code == 200


def test_request_params_echo_fills_the_defaults(api: httpx.Client, wav: Path) -> None:
    audio_url = upload(api, wav)["audio_url"]
    body = {"audio_url": audio_url, "subtitles": True, "summarization": True,
            "translation": True, "translation_config": {"target_languages": ["fr"]},
            "callback": True, "callback_config": {"url": "http://127.0.0.1:9/hook"},
            "custom_metadata": {"ticket": 7}}
    job = api.get(f"/v2/pre-recorded/{create(api, **body)['id']}").json()
    params = job["request_params"]
    assert "custom_metadata" not in params and job["custom_metadata"] == {"ticket": 7}
    assert params["audio_url"] == audio_url and params["model"] == "solaria-1"
    assert params["language_config"] == {"languages": [], "code_switching": False}
    assert params["subtitles_config"] == {"formats": ["srt"], "style": "default"}
    assert params["summarization_config"] == {"type": "general"}
    assert params["translation_config"] == {"target_languages": ["fr"], "model": "base",
                                            "match_original_utterances": True, "lipsync": True,
                                            "context_adaptation": True, "informal": False}
    assert params["callback_config"] == {"url": "http://127.0.0.1:9/hook", "method": "POST"}
    for switch in ("diarization", "sentences", "punctuation_enhanced", "custom_vocabulary", "custom_spelling",
                   "named_entity_recognition", "sentiment_analysis", "audio_to_llm", "pii_redaction"):
        assert params[switch] is False


def test_a_full_spec_example_body_is_accepted(api: httpx.Client) -> None:
    # API.md §12.2, with the callback pointed at a closed loopback port.
    body = {
        "audio_url": AUDIO, "model": "solaria-1",
        "language_config": {"languages": ["en", "fr"], "code_switching": False},
        "diarization": True, "diarization_config": {"min_speakers": 1, "max_speakers": 4},
        "subtitles": True,
        "subtitles_config": {"formats": ["srt", "vtt"], "minimum_duration": 1, "maximum_duration": 5,
                             "maximum_characters_per_row": 42, "maximum_rows_per_caption": 2, "style": "default"},
        "sentences": False, "punctuation_enhanced": False, "custom_vocabulary": True,
        "custom_vocabulary_config": {"vocabulary": ["Gladia", {"value": "Solaria", "intensity": 0.5,
                                                               "pronunciations": ["so-lar-ia"], "language": "en"}],
                                     "default_intensity": 0.4},
        "summarization": True, "summarization_config": {"type": "bullet_points"}, "translation": False,
        "callback": True, "callback_config": {"url": "http://127.0.0.1:9/gladia/callback", "method": "POST"},
        "custom_metadata": {"job_ref": "rec-2024-0001", "tenant": "acme"},
        "audio_to_llm": True, "audio_to_llm_config": {"prompts": ["Extract the key points"]},
        "pii_redaction": True, "pii_redaction_config": {"entity_types": ["GDPR"], "processed_text_type": "MASK"},
    }
    created = create(api, **{key: value for key, value in body.items() if key != "audio_url"}, audio_url=AUDIO)
    assert api.get(f"/v2/pre-recorded/{created['id']}").json()["request_params"]["subtitles_config"] == \
        body["subtitles_config"]
