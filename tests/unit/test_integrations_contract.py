"""The integrations' pure contracts, by tables: query strings, routes and tokens, path mapping, webhook bodies,
the streaming multipart reader, the whisper answer forms, and the integrations config."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import srt

from transcribed import config
from transcribed.config import PathMapping
from transcribed.errors import ConfigError
from transcribed.gladia.result import Transcript, Utterance, Word
from transcribed.outputs.subtitles import SubtitleLimits
from transcribed.outputs.whisper import render_answer
from transcribed.receiver.confine import confine
from transcribed.receiver.contract import (
    AsrRequest,
    BadRequest,
    asr_request,
    detect_request,
    language_name,
    map_path,
    route,
    webhook_paths,
)
from transcribed.receiver.multipart import BadBody, save_field


@pytest.mark.parametrize(("query", "expected"), [
    ("task=transcribe&language=en&output=srt&encode=false", AsrRequest("transcribe", "en", "srt", False)),
    ("task=translate&language=fr&output=srt&encode=false", AsrRequest("translate", "fr", "srt", False)),
    ("", AsrRequest("transcribe", None, "srt", True)),
    ("output=VTT&encode=True&language=", AsrRequest("transcribe", None, "vtt", True)),
    ("output=tsv&language=english", AsrRequest("transcribe", "en", "tsv", True)),
    ("output=json&vad_filter=true&word_timestamps=false&initial_prompt=x", AsrRequest("transcribe", None, "json",
                                                                                    True)),
])
def test_asr_queries(query: str, expected: AsrRequest) -> None:
    assert asr_request(query) == expected


@pytest.mark.parametrize(("query", "names"), [
    ("task=summarise", "task"), ("output=docx", "output"), ("encode=maybe", "encode"), ("language=xx", "language"),
    ("output=srt&output=vtt", "output"),
])
def test_bad_asr_queries_name_the_parameter(query: str, names: str) -> None:
    with pytest.raises(BadRequest, match=names):
        asr_request(query)


def test_detect_language_query() -> None:
    assert detect_request("encode=false") == AsrRequest("detect", None, "json", False)
    assert language_name("en") == "english" and language_name("FR") == "french" and language_name("wo") == "wo"


TOKEN = "s3cret-token-0123456789"


@pytest.mark.parametrize(("target", "token", "expected"), [
    (f"/{TOKEN}/asr", TOKEN, "asr"),
    (f"/{TOKEN}/detect-language", TOKEN, "detect-language"),
    (f"/{TOKEN}/sonarr/", TOKEN, "sonarr"),
    (f"/{TOKEN}/", TOKEN, ""),
    (f"/{TOKEN}", TOKEN, ""),
    ("/asr", TOKEN, None),
    (f"/{TOKEN}x/asr", TOKEN, None),
    (f"/{TOKEN[:-1]}/asr", TOKEN, None),
    (f"/{TOKEN}/docs", TOKEN, None),
    ("/asr", None, "asr"),
    ("/", None, ""),
    ("/radarr", None, "radarr"),
    (f"/{TOKEN}/asr", None, None),
])
def test_routes_and_tokens(target: str, token: str | None, expected: str | None) -> None:
    assert route(target, token) == expected


MAPPINGS = (PathMapping("/tv/anime", "/srv/anime"), PathMapping("/tv", "/srv/media/tv"),
            PathMapping("/", "/mnt/everything"))


@pytest.mark.parametrize(("path", "expected"), [
    ("/tv/Show/S01E01.mkv", "/srv/media/tv/Show/S01E01.mkv"),
    ("/tv/anime/One/E1.mkv", "/srv/anime/One/E1.mkv"),          # the longest prefix wins
    ("/tvshows/x.mkv", "/mnt/everything/tvshows/x.mkv"),         # a prefix is a whole folder name
    ("/tv", "/srv/media/tv"),
    ("/tv/../etc/passwd", "/mnt/everything/etc/passwd"),         # normalised before mapping
    ("relative.mkv", "relative.mkv"),
])
def test_path_mapping(path: str, expected: str) -> None:
    assert map_path(path, MAPPINGS) == expected


def test_no_mapping_keeps_the_path() -> None:
    assert map_path("/data/film.mkv", ()) == "/data/film.mkv"


SONARR_IMPORT = {"eventType": "Download", "series": {"path": "/tv/Show"}, "isUpgrade": True,
                 "episodeFile": {"relativePath": "Season 1/E1.mkv", "path": "/tv/Show/Season 1/E1.mkv"},
                 "deletedFiles": [{"path": "/tv/Show/Season 1/E1.old.mkv"}]}


@pytest.mark.parametrize(("kind", "body", "event", "paths"), [
    ("sonarr", SONARR_IMPORT, "Download", ("/tv/Show/Season 1/E1.mkv",)),
    ("sonarr", {"eventType": "Download", "series": {"path": "/tv/S"}, "episodeFile": {"relativePath": "a.mkv"}},
     "Download", ("/tv/S/a.mkv",)),
    ("sonarr", {"eventType": "Rename", "series": {"path": "/tv/S"},
                "renamedEpisodeFiles": [{"path": "/tv/S/b.mkv", "previousPath": "/tv/S/a.mkv"},
                                        {"path": "/tv/S/d.mkv", "previousPath": "/tv/S/c.mkv"}]},
     "Rename", ("/tv/S/b.mkv", "/tv/S/d.mkv")),
    ("sonarr", {"eventType": "Test", "instanceName": "Sonarr"}, "Test", ()),
    ("sonarr", {"eventType": "Grab", "series": {"path": "/tv/S"}}, "Grab", ()),
    ("sonarr", {"eventType": "EpisodeFileDelete", "episodeFile": {"path": "/tv/S/a.mkv"}}, "EpisodeFileDelete", ()),
    ("radarr", {"eventType": "Download", "movie": {"folderPath": "/movies/F (2021)"},
                "movieFile": {"relativePath": "F.mkv", "path": "/movies/F (2021)/F.mkv"}},
     "Download", ("/movies/F (2021)/F.mkv",)),
    ("radarr", {"eventType": "Download", "movie": {"folderPath": "/movies/G"}, "movieFile": {"relativePath": "G.mkv"}},
     "Download", ("/movies/G/G.mkv",)),
    ("radarr", {"eventType": "Health", "level": "warning"}, "Health", ()),
    ("enqueue", {"paths": ["/a.mkv", "/b.mkv", "/a.mkv"]}, "enqueue", ("/a.mkv", "/b.mkv")),
    ("enqueue", {"path": "/a.mkv"}, "enqueue", ("/a.mkv",)),
    ("enqueue", {"file": "/a.mkv", "title": "Tautulli"}, "enqueue", ("/a.mkv",)),
])
def test_webhook_bodies(kind: str, body: object, event: str, paths: tuple[str, ...]) -> None:
    named = webhook_paths(kind, json.dumps(body).encode())
    assert (named.event, named.paths) == (event, paths)


@pytest.mark.parametrize(("kind", "body"), [
    ("sonarr", b"not json"), ("sonarr", b"[]"), ("sonarr", b'{"series": {}}'), ("enqueue", b'{"paths": []}'),
    ("enqueue", b'{"paths": [1]}'), ("enqueue", b"{}"),
])
def test_bad_webhook_bodies(kind: str, body: bytes) -> None:
    with pytest.raises(BadRequest):
        webhook_paths(kind, body)


def test_confinement(tmp_path: Path) -> None:
    library = tmp_path / "library"
    (library / "show").mkdir(parents=True)
    (library / "show" / "e1.mkv").write_bytes(b"x")
    outside = tmp_path / "outside.mkv"
    outside.write_bytes(b"x")
    (library / "show" / "escape.mkv").symlink_to(outside)
    (library / "show" / "inner.mkv").symlink_to(library / "show" / "e1.mkv")
    linked_root = tmp_path / "linked"
    linked_root.symlink_to(library)
    roots = (library, linked_root)
    cases = {
        str(library / "show" / "e1.mkv"): (200, library / "show" / "e1.mkv"),
        str(library / "show" / "inner.mkv"): (200, library / "show" / "inner.mkv"),   # outputs beside the link
        str(linked_root / "show" / "e1.mkv"): (200, linked_root / "show" / "e1.mkv"),
        str(outside): (403, None),
        str(library / ".." / "outside.mkv"): (403, None),
        str(library / "show" / "escape.mkv"): (403, None),
        str(library / "show" / "gone.mkv"): (404, None),
        str(library / "show"): (404, None),
        "show/e1.mkv": (403, None),
    }
    for path, (status, accepted) in cases.items():
        verdict = confine(path, roots)
        assert (verdict.status, verdict.path) == (status, accepted), (path, verdict)


def _body(parts: list[tuple[str, bytes]], boundary: str = "b0undary") -> tuple[bytes, str]:
    out = b""
    for name, content in parts:
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}.bin\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode() + content + b"\r\n"
    return out + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("content", [b"", b"a", b"\r\n--b0undar" * 20000, bytes(range(256)) * 1000,
                                     b"x" * (64 * 1024 - 3) + b"\r\n--b0undar"])
@pytest.mark.parametrize("chunk", [1, 7, 65536])
def test_multipart_field_is_streamed_to_the_file(content: bytes, chunk: int) -> None:
    body, content_type = _body([("other", b"ignored\r\n--"), ("audio_file", content), ("more", b"z")])
    source = io.BytesIO(body)
    out = io.BytesIO()
    saved = save_field(lambda n: source.read(min(n, chunk)), len(body), content_type, "audio_file", out)
    assert out.getvalue() == content and saved.size == len(content) and saved.filename == "audio_file.bin"
    assert source.read() == b""                                   # the whole body was read, no more


@pytest.mark.parametrize(("body", "content_type"), [
    (b"plain", "application/octet-stream"),
    (b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--b--\r\n", "multipart/form-data; boundary=b"),
    (b"--b\r\nContent-Disposition: form-data; name=\"audio_file\"\r\n\r\nno end", "multipart/form-data; boundary=b"),
    (b"", "multipart/form-data"),
])
def test_bad_multipart_bodies(body: bytes, content_type: str) -> None:
    with pytest.raises(BadBody):
        save_field(io.BytesIO(body).read, len(body), content_type, "audio_file", io.BytesIO())


def test_truncated_body_is_refused() -> None:
    body, content_type = _body([("audio_file", b"x" * 1000)])
    with pytest.raises(BadBody, match="ended"):
        save_field(io.BytesIO(body[:500]).read, len(body), content_type, "audio_file", io.BytesIO())


TRANSCRIPT = Transcript("Hello there. General\tKenobi.", ("en",), (
    Utterance(0.5, 1.7, "Hello there.", "en", 0, None, 0.9, (Word("Hello", 0.5, 0.9, 0.9),
                                                             Word("there.", 1.0, 1.7, 0.8))),
    Utterance(2.0, 3.25, "General\tKenobi.", "en", 0, None, 0.9, (Word("General", 2.0, 2.5, 0.9),
                                                                   Word("Kenobi.", 2.6, 3.25, 0.9))),
), {})


def test_whisper_answer_forms() -> None:
    limits = SubtitleLimits.from_request(None)
    text, kind = render_answer(TRANSCRIPT, "srt", limits)
    assert kind.startswith("text/plain") and next(c.content for c in srt.parse(text)) == "Hello there."
    assert render_answer(TRANSCRIPT, "vtt", limits)[0].startswith("WEBVTT")
    assert render_answer(TRANSCRIPT, "txt", limits)[0] == "Hello there. General\tKenobi.\n"
    assert render_answer(TRANSCRIPT, "tsv", limits)[0] == "start\tend\ttext\n500\t1700\tHello there.\n" \
                                                          "2000\t3250\tGeneral Kenobi.\n"
    whisper = json.loads(render_answer(TRANSCRIPT, "json", limits)[0])
    assert whisper["language"] == "en" and [s["start"] for s in whisper["segments"]] == [0.5, 2.0]
    assert whisper["segments"][0]["words"][1] == {"word": " there.", "start": 1.0, "end": 1.7, "probability": 0.8}
    with pytest.raises(ValueError):
        render_answer(TRANSCRIPT, "docx", limits)


def _problems(table: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config.parse({"integrations": table}, None, {})
    return caught.value.problems


def test_integrations_config() -> None:
    loaded, _ = config.parse({"integrations": {"listen": "[::1]:9000", "path_map": [
        {"from": "/tv", "to": "/srv/tv"}, {"from": "/tv/anime/", "to": "/srv/anime"}]}}, None, {})
    assert loaded.integrations.address() == ("::1", 9000) and loaded.integrations.token is None
    assert [m.source for m in loaded.integrations.path_map] == ["/tv/anime", "/tv"]
    assert not config.parse({}, None, {})[0].integrations.enabled
    assert any("integrations.token: required" in p for p in _problems({"listen": "0.0.0.0:9000"}))
    assert any("integrations.listen" in p for p in _problems({"listen": "nowhere"}))
    assert any("integrations.path_map" in p for p in _problems({"path_map": [{"from": "tv", "to": "/x"}]}))
    problems = _problems({"token": "with/slash"})
    assert any("integrations.token" in p for p in problems) and not any("with/slash" in p for p in problems)
    _, warnings = config.parse({"integrations": {"token": "short"}}, None, {})
    assert any("integrations.token is short" in w for w in warnings)
    loaded, _ = config.parse({"integrations": {"listen": "0.0.0.0:9000", "token": "0123456789abcdef0123"}}, None, {})
    assert loaded.integrations.enabled and "0123456789abcdef" not in repr(loaded.integrations)
