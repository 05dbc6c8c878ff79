"""The media-server integrations' contracts, pure: what Bazarr, Sonarr, Radarr and scripts send, as plain data.

- `asr_request(query)` / `detect_request(query)`: the whisper-asr-webservice query strings Bazarr sends
  (`task`, `language`, `output`, `encode`), checked; BadRequest names the parameter and what was expected.
- `language_name(code)`: whisper's language names ("en" -> "english") for `detect-language`'s answer.
- `webhook_paths(kind, body)`: the file paths a Sonarr / Radarr webhook or an `enqueue` body names, with the
  event that named them; events that name no file to transcribe give an empty list.
- `map_path(path, mappings)`: a caller's path -> this host's, by the longest matching prefix.
- `route(target, token)`: which endpoint a request path names, the token checked in constant time.

No I/O: every function is tested by tables (tests/unit/test_integrations_contract.py).
"""

from __future__ import annotations

import hmac
import json
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs

from transcribed.config import PathMapping

__all__ = ["OUTPUTS", "Answer", "AsrRequest", "BadRequest", "Received", "asr_request", "detect_request",
           "language_name", "map_path", "route", "webhook_paths"]

OUTPUTS = ("srt", "vtt", "txt", "json", "tsv")
Task = Literal["transcribe", "translate"]
ENDPOINTS = ("asr", "detect-language", "sonarr", "radarr", "enqueue", "")

# whisper's LANGUAGES table (the names whisper-asr-webservice answers with), for the codes Gladia knows.
LANGUAGE_NAMES: Mapping[str, str] = {
    "en": "english", "zh": "chinese", "de": "german", "es": "spanish", "ru": "russian", "ko": "korean",
    "fr": "french", "ja": "japanese", "pt": "portuguese", "tr": "turkish", "pl": "polish", "ca": "catalan",
    "nl": "dutch", "ar": "arabic", "sv": "swedish", "it": "italian", "id": "indonesian", "hi": "hindi",
    "fi": "finnish", "vi": "vietnamese", "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay",
    "cs": "czech", "ro": "romanian", "da": "danish", "hu": "hungarian", "ta": "tamil", "no": "norwegian",
    "th": "thai", "ur": "urdu", "hr": "croatian", "bg": "bulgarian", "lt": "lithuanian", "la": "latin",
    "mi": "maori", "ml": "malayalam", "cy": "welsh", "sk": "slovak", "te": "telugu", "fa": "persian",
    "lv": "latvian", "bn": "bengali", "sr": "serbian", "az": "azerbaijani", "sl": "slovenian", "kn": "kannada",
    "et": "estonian", "mk": "macedonian", "br": "breton", "eu": "basque", "is": "icelandic", "hy": "armenian",
    "ne": "nepali", "mn": "mongolian", "bs": "bosnian", "kk": "kazakh", "sq": "albanian", "sw": "swahili",
    "gl": "galician", "mr": "marathi", "pa": "punjabi", "si": "sinhala", "km": "khmer", "sn": "shona",
    "yo": "yoruba", "so": "somali", "af": "afrikaans", "oc": "occitan", "ka": "georgian", "be": "belarusian",
    "tg": "tajik", "sd": "sindhi", "gu": "gujarati", "am": "amharic", "yi": "yiddish", "lo": "lao",
    "uz": "uzbek", "fo": "faroese", "ht": "haitian creole", "ps": "pashto", "tk": "turkmen", "nn": "nynorsk",
    "mt": "maltese", "sa": "sanskrit", "lb": "luxembourgish", "my": "myanmar", "bo": "tibetan", "tl": "tagalog",
    "mg": "malagasy", "as": "assamese", "tt": "tatar", "haw": "hawaiian", "ln": "lingala", "ha": "hausa",
    "ba": "bashkir", "jw": "javanese", "jv": "javanese", "su": "sundanese", "yue": "cantonese",
}
_CODES_BY_NAME = {name: code for code, name in reversed(list(LANGUAGE_NAMES.items()))}


class BadRequest(ValueError):
    """A parameter or body the contract does not allow; str() is the one-line answer to the caller."""


@dataclass(frozen=True)
class AsrRequest:
    """What `POST asr` (or `detect-language`, with task "detect") asks: `language` is an ISO 639-1 code
    or None (detect it); `encoded` True means the field holds a media file, False raw s16le 16 kHz mono PCM."""

    task: Literal["transcribe", "translate", "detect"]
    language: str | None
    output: str
    encoded: bool


@dataclass(frozen=True)
class Received:
    """The `audio_file` field as received: a private file (the callee owns it: it moves or deletes it), its
    size and sha256 (hex, of exactly the bytes received) and the file name the client gave."""

    path: Path
    sha256: str
    size: int
    filename: str


@dataclass(frozen=True)
class Answer:
    """What to answer a request: status, body and its media type."""

    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


def _single(query: Mapping[str, list[str]], name: str, default: str) -> str:
    values = query.get(name)
    if not values:
        return default
    if len(set(values)) > 1:
        raise BadRequest(f"{name}: given more than once with different values")
    return values[0]


def _parse_query(text: str) -> dict[str, list[str]]:
    try:
        return parse_qs(text, keep_blank_values=True, strict_parsing=False, max_num_fields=50)
    except ValueError as exc:
        raise BadRequest(f"query string: {exc}") from None


def _boolean(query: Mapping[str, list[str]], name: str, default: bool) -> bool:
    text = _single(query, name, "").strip().lower()
    if not text:
        return default
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise BadRequest(f"{name}: expected true or false, got {text[:20]!r}")


def _language(query: Mapping[str, list[str]]) -> str | None:
    text = _single(query, "language", "").strip().lower()
    if not text:
        return None
    if text in LANGUAGE_NAMES:
        return text
    if text in _CODES_BY_NAME:      # whisper also takes names ("english")
        return _CODES_BY_NAME[text]
    raise BadRequest(f"language: expected an ISO 639-1 code such as en, fr, de, got {text[:20]!r}")


def asr_request(query_text: str) -> AsrRequest:
    """Given `POST asr`'s query string, return what it asks; raise BadRequest naming the bad parameter.

    Defaults: task=transcribe, encode=true (as whisper-asr-webservice), output=srt (Bazarr always sets it;
    SRT is the form every subtitle tool wants)."""
    query = _parse_query(query_text)
    task = _single(query, "task", "transcribe").strip().lower()
    if task not in ("transcribe", "translate"):
        raise BadRequest(f"task: expected transcribe or translate, got {task[:20]!r}")
    output = _single(query, "output", "srt").strip().lower()
    if output not in OUTPUTS:
        raise BadRequest(f"output: expected one of {', '.join(OUTPUTS)}, got {output[:20]!r}")
    return AsrRequest(task, _language(query), output, _boolean(query, "encode", True))  # type: ignore[arg-type]


def detect_request(query_text: str) -> AsrRequest:
    """Given `POST detect-language`'s query string, return what it asks (task "detect")."""
    query = _parse_query(query_text)
    return AsrRequest("detect", None, "json", _boolean(query, "encode", True))


def language_name(code: str) -> str:
    """whisper's name for an ISO 639-1 code ("en" -> "english"); the code itself when whisper has none."""
    return LANGUAGE_NAMES.get(code.lower(), code.lower())


def route(target: str, token: str | None) -> str | None:
    """Given a request's path (no query) and the configured token, return the endpoint it names ("asr",
    "detect-language", "sonarr", "radarr", "enqueue", or "" for the health check), or None when the path
    names none or the token does not match (compared in constant time; the same None either way)."""
    path = target
    if token is not None:
        head, _, rest = target.lstrip("/").partition("/")
        # compare_digest on bytes of any length: it takes the same time whatever prefix matches.
        if not hmac.compare_digest(head.encode("utf-8", "surrogateescape"), token.encode()):
            return None
        path = "/" + rest
    name = path.strip("/")
    return name if name in ENDPOINTS else None


def map_path(path: str, mappings: Sequence[PathMapping]) -> str:
    """Given a path as the caller sees it and the mappings (longest `source` first, as config orders them),
    return it as this host sees it: the first mapping whose source is the path or a folder above it has that
    prefix replaced; with none, the path as it is. The path is normalised first (`..` resolved lexically, so
    "/tv/../etc" is not taken for a path under "/tv"; the real check on the resolved path comes after)."""
    if path.startswith("/"):
        path = posixpath.normpath(path)
    for mapping in mappings:
        source = mapping.source
        if path == source or path.startswith(source.rstrip("/") + "/"):
            path = mapping.target.rstrip("/") + path[len(source.rstrip("/")):]
            break
    return posixpath.normpath(path) if path.startswith("/") else path


@dataclass(frozen=True)
class Named:
    """The file paths a webhook names (as the caller sees them) and its event, for the log."""

    event: str
    paths: tuple[str, ...]


# Sonarr/Radarr events that put a file in the library, or rename one; every other event is acknowledged.
FILE_EVENTS = ("Download", "Rename")


def webhook_paths(kind: str, body: bytes) -> Named:
    """Given the endpoint ("sonarr", "radarr" or "enqueue") and its JSON body, return the event and the
    paths it names; raise BadRequest for a body that is not the JSON object expected."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("body: expected JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("body: expected a JSON object")
    if kind == "enqueue":
        return Named("enqueue", _enqueue_paths(data))
    event = data.get("eventType")
    if not isinstance(event, str):
        raise BadRequest("eventType: expected a string (Sonarr/Radarr webhook JSON)")
    if event not in FILE_EVENTS:
        return Named(event, ())
    if kind == "sonarr":
        files = _files(data, "episodeFile", "episodeFiles", "renamedEpisodeFiles")
        folder = _text(_object(data.get("series")), "path")
    else:
        files = _files(data, "movieFile", "movieFiles", "renamedMovieFiles")
        folder = _text(_object(data.get("movie")), "folderPath") or _text(_object(data.get("movie")), "path")
    paths: list[str] = []
    for item in files:
        path = _text(item, "path")
        relative = _text(item, "relativePath")
        if path is None and relative is not None and folder is not None:
            path = posixpath.join(folder, relative)
        if path is not None and path not in paths:
            paths.append(path)
    return Named(event, tuple(paths))


def _enqueue_paths(data: Mapping[str, Any]) -> tuple[str, ...]:
    raw: object = data.get("paths", data.get("path", data.get("file")))
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items or not all(isinstance(p, str) and p for p in items):
        raise BadRequest('body: expected {"paths": ["/path/to/file", ...]} or {"path": "/path/to/file"}')
    if len(items) > 1000:
        raise BadRequest("paths: at most 1000 per request")
    return tuple(dict.fromkeys(items))


def _files(data: Mapping[str, Any], one: str, many: str, renamed: str) -> list[Mapping[str, Any]]:
    found = [_object(data.get(one))]
    for name in (many, renamed):
        value = data.get(name)
        if isinstance(value, list):
            found.extend(_object(item) for item in value)
    return [item for item in found if item]


def _object(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(container: Mapping[str, Any], key: str) -> str | None:
    value = container.get(key)
    return value if isinstance(value, str) and value else None
