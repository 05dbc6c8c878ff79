"""Clients for the integrations endpoint as Bazarr, Sonarr and Radarr call it: stdlib HTTP, streamed bodies."""

from __future__ import annotations

import http.client
import json
import math
import os
import socket
import struct
from collections.abc import Iterator
from typing import Any

BOUNDARY = "bazarr" + os.urandom(8).hex()
RATE = 16_000


def pcm_tone(seconds: float, frequency: float = 440.0) -> bytes:
    """Raw s16le mono 16 kHz PCM, what Bazarr's ffmpeg produces (a tone: distinct frequencies differ)."""
    count = int(seconds * RATE)
    return b"".join(struct.pack("<h", int(6000 * math.sin(2 * math.pi * frequency * i / RATE)))
                    for i in range(count))


def multipart_parts(field: str, filename: str, size: int) -> tuple[bytes, bytes, int]:
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    return head, tail, len(head) + size + len(tail)


def connect(port: int, host: str = "127.0.0.1", timeout: float = 300.0) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(host, port, timeout=timeout)


def post_audio(port: int, path: str, audio: bytes | Iterator[bytes], size: int | None = None,
               filename: str = "audio_file", timeout: float = 300.0) -> tuple[int, str, bytes]:
    """POST `audio` as field audio_file to `path` (with its query string); return (status, type, body)."""
    if isinstance(audio, bytes):
        size, chunks = len(audio), iter([audio])
    else:
        assert size is not None
        chunks = audio
    head, tail, length = multipart_parts("audio_file", filename, size)
    connection = connect(port, timeout=timeout)
    try:
        connection.putrequest("POST", path)
        connection.putheader("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")
        connection.putheader("Content-Length", str(length))
        connection.endheaders()
        connection.send(head)
        for chunk in chunks:
            connection.send(chunk)
        connection.send(tail)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        connection.close()


def post_json(port: int, path: str, body: Any, timeout: float = 60.0) -> tuple[int, Any]:
    connection = connect(port, timeout=timeout)
    try:
        data = json.dumps(body).encode()
        connection.request("POST", path, body=data, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        raw = response.read()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, raw
    finally:
        connection.close()


def send_then_hang_up(port: int, path: str, audio: bytes) -> None:
    """Send a whole asr request, then close the connection without reading the answer."""
    head, tail, length = multipart_parts("audio_file", "audio_file", len(audio))
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        raw.sendall((f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}"
                     f"\r\nContent-Length: {length}\r\n\r\n").encode() + head + audio + tail)


def sonarr_download(path: str, *, series_path: str = "/tv/Show", upgrade: bool = False) -> dict[str, Any]:
    """A Sonarr v4 "On Import" webhook body (eventType Download), as INTEGRATIONS.md describes it."""
    relative = path[len(series_path) + 1:] if path.startswith(series_path + "/") else os.path.basename(path)
    return {
        "eventType": "Download", "instanceName": "Sonarr", "applicationUrl": "",
        "series": {"id": 1, "title": "Show", "titleSlug": "show", "path": series_path, "tvdbId": 12345,
                   "type": "standard", "year": 2020},
        "episodes": [{"id": 7, "episodeNumber": 1, "seasonNumber": 1, "title": "Pilot", "airDate": "2020-01-01"}],
        "episodeFile": {"id": 3, "relativePath": relative, "path": path, "quality": "WEBDL-1080p",
                        "qualityVersion": 1, "size": 1000},
        "isUpgrade": upgrade, "downloadClient": "qBittorrent", "downloadId": "ABCDEF",
        **({"deletedFiles": [{"id": 2, "relativePath": "old.mkv", "path": series_path + "/old.mkv"}]}
           if upgrade else {}),
    }


def sonarr_rename(pairs: list[tuple[str, str]], series_path: str = "/tv/Show") -> dict[str, Any]:
    return {"eventType": "Rename", "instanceName": "Sonarr", "series": {"id": 1, "title": "Show", "path": series_path},
            "renamedEpisodeFiles": [{"id": 3, "relativePath": os.path.basename(new), "path": new,
                                     "previousRelativePath": os.path.basename(old), "previousPath": old}
                                    for old, new in pairs]}


def radarr_download(path: str, folder: str) -> dict[str, Any]:
    """A Radarr "On Import" webhook body: movie.folderPath, movieFile.path and relativePath."""
    return {
        "eventType": "Download", "instanceName": "Radarr", "applicationUrl": "",
        "movie": {"id": 1, "title": "Film", "year": 2021, "folderPath": folder, "tmdbId": 42},
        "remoteMovie": {"tmdbId": 42, "title": "Film", "year": 2021},
        "movieFile": {"id": 5, "relativePath": os.path.basename(path), "path": path, "quality": "Bluray-1080p",
                      "qualityVersion": 1, "size": 2000},
        "isUpgrade": False, "downloadClient": "qBittorrent", "downloadId": "FEDCBA",
    }
