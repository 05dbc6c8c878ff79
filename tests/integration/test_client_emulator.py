"""The client against the emulator over real HTTP: list by attempt id, delete, and the stop event."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from transcribed.emulator import Emulator, EmulatorSettings
from transcribed.gladia.client import GladiaClient, Stopped

KEY = "sk_client_test_0123456789"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Emulator]:
    with Emulator(EmulatorSettings(api_keys=frozenset({KEY}), processing_seconds=0.05,
                                   data_dir=tmp_path / "data")) as running:
        yield running


def make_audio(path: Path) -> Path:
    import wave

    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\0\1" * 8000)
    return path


def test_create_once_then_find_wait_and_delete(tmp_path: Path, server: Emulator) -> None:
    with GladiaClient(server.base_url, KEY) as client:
        upload = client.upload(make_audio(tmp_path / "a.wav"))
        job = client.create_once({"audio_url": upload.audio_url}, "attempt-42")
        assert client.find_attempt("attempt-42") == job
        assert client.find_attempt("attempt-other") is None
        view = client.wait(job, initial=0.05, cap=0.2, deadline=60)
        assert view.status == "done" and view.result is not None
        assert client.delete(job.id) is True
        assert client.delete(job.id) is False          # already gone: 404 is not an error here
    assert server.counters()["jobs_created"] == 1


def test_a_set_stop_event_ends_polling_at_once(tmp_path: Path, server: Emulator) -> None:
    server.set_faults(hold_jobs=True)
    stop = threading.Event()
    with GladiaClient(server.base_url, KEY, stop=stop) as client:
        job = client.create_once({"audio_url": client.upload(make_audio(tmp_path / "a.wav")).audio_url}, "a-1")
        stop.set()
        with pytest.raises(Stopped):
            client.wait(job, initial=5.0, cap=5.0, deadline=60)
