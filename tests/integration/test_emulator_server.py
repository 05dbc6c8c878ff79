"""The emulator as a server: start/stop (prompt even with open and stalled connections), serve() for the
CLI, the public base URL in bodies, IPv6 loopback, and a private data dir that goes away on stop."""

from __future__ import annotations

import socket
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from tests.integration.emulator_fixtures import KEY, create, emulator_factory, upload, wait_for, wait_status, wav

from transcribed.emulator import Emulator, EmulatorSettings, Faults, serve

__all__ = ["emulator_factory", "wav"]  # fixtures used by name


def test_stop_closes_the_port_and_every_connection(wav: Path) -> None:
    emulator = Emulator(EmulatorSettings(), Faults(delay_seconds={"GET /v2/pre-recorded": 60.0}))
    with pytest.raises(RuntimeError):
        _ = emulator.base_url
    emulator.start()
    port = int(emulator.base_url.rsplit(":", 1)[1])
    idle = socket.create_connection(("127.0.0.1", port))  # a kept-alive connection doing nothing
    stalled: list[BaseException] = []

    def stall() -> None:
        try:
            httpx.get(f"{emulator.base_url}/v2/pre-recorded", headers={"x-gladia-key": KEY}, timeout=60)
        except httpx.HTTPError as exc:
            stalled.append(exc)

    waiter = threading.Thread(target=stall)
    waiter.start()
    wait_for(lambda: emulator.counters().get("GET /v2/pre-recorded"), message="the stalled request to arrive")
    emulator.stop()  # must not wait out the 60 s delay, nor the idle connection
    waiter.join(timeout=30)
    assert not waiter.is_alive() and stalled
    assert idle.recv(1) == b""
    idle.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    emulator.stop()  # a second stop is harmless
    with pytest.raises(RuntimeError):
        emulator.start()


def test_a_private_data_dir_is_removed_on_stop(wav: Path) -> None:
    with Emulator(EmulatorSettings()) as emulator, \
            httpx.Client(base_url=emulator.base_url, headers={"x-gladia-key": KEY}) as api:
        file_id = upload(api, wav)["audio_metadata"]["id"]
        stored = list(Path(tempfile.gettempdir()).glob(f"gladia-emulator-*/files/{file_id}"))
        assert len(stored) == 1
    assert not stored[0].parent.parent.exists()


def test_uploads_in_a_kept_data_dir_survive_a_restart(tmp_path: Path, wav: Path) -> None:
    settings = EmulatorSettings(data_dir=tmp_path / "kept", processing_seconds=0.01)
    with Emulator(settings) as first, \
            httpx.Client(base_url=first.base_url, headers={"x-gladia-key": KEY}) as api:
        file_id = upload(api, wav)["audio_metadata"]["id"]
    with Emulator(settings) as second, \
            httpx.Client(base_url=second.base_url, headers={"x-gladia-key": KEY}) as api:
        assert api.get(f"/file/{file_id}").content == wav.read_bytes()
        job = wait_status(api, create(api, f"{second.base_url}/file/{file_id}")["id"])
        assert job["status"] == "done" and job["file"]["audio_duration"] == 3.0


def test_serve_announces_and_stops_on_the_event() -> None:
    stop = threading.Event()
    announced: list[str] = []
    runner = threading.Thread(target=serve, args=(EmulatorSettings(), Faults(), stop, announced.append))
    runner.start()
    try:
        wait_for(lambda: announced, message="the announcement")
        response = httpx.get(f"{announced[0]}/v2/pre-recorded", headers={"x-gladia-key": KEY})
        assert response.status_code == 200
    finally:
        stop.set()
        runner.join(timeout=30)
    assert not runner.is_alive() and len(announced) == 1


def test_bodies_use_the_public_base_url(emulator_factory: Callable[..., Emulator], wav: Path) -> None:
    emulator = emulator_factory(public_base_url="https://gladia.example.test/")
    with httpx.Client(base_url=emulator.base_url, headers={"x-gladia-key": KEY}) as api:
        uploaded = upload(api, wav)
        assert uploaded["audio_url"].startswith("https://gladia.example.test/file/")
        job = create(api, uploaded["audio_url"])
        assert job["result_url"] == f"https://gladia.example.test/v2/pre-recorded/{job['id']}"
        # Its own public URL is recognised as one of its files, not fetched.
        assert api.get(f"/v2/pre-recorded/{job['id']}").json()["file"]["filename"] == "meeting.wav"
        page = api.get("/v2/pre-recorded").json()
        assert page["first"].startswith("https://gladia.example.test/v2/pre-recorded?")


def test_unusable_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_concurrent_jobs"):
        Emulator(EmulatorSettings(max_concurrent_jobs=0))
    with pytest.raises(ValueError, match="server_error_rate"):
        Emulator(EmulatorSettings(), Faults(server_error_rate={"*": 1.5}))


def test_ipv6_loopback(emulator_factory: Callable[..., Emulator]) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    emulator = emulator_factory(host="::1")
    assert emulator.base_url.startswith("http://[::1]:")
    assert httpx.get(f"{emulator.base_url}/v2/pre-recorded", headers={"x-gladia-key": KEY}).status_code == 200
