"""Media-server integrations end to end (issue 14): the installed CLI, the emulator over real HTTP, and the
bodies Bazarr, Sonarr and Radarr really send (INTEGRATIONS.md)."""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import srt
import webvtt
from integrations_support import (
    pcm_tone,
    post_audio,
    post_json,
    radarr_download,
    send_then_hang_up,
    sonarr_download,
    sonarr_rename,
)
from support import KEY, DaemonProcess, free_port, make_wav, run_cli, wait_until, write_config

from transcribed.emulator import Emulator, EmulatorSettings

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
TOKEN = "t0ken-" + "a1b2c3d4e5f6a7b8c9d0"



class Setup:
    def __init__(self, tmp_path: Path, emulator: Emulator, **integrations: object) -> None:
        self.tmp = tmp_path
        self.emulator = emulator
        self.inbox = tmp_path / "inbox"
        self.inbox.mkdir(exist_ok=True)
        self.library = tmp_path / "media"
        self.library.mkdir(exist_ok=True)
        self.port = free_port()
        table: dict[str, object] = {"listen": f"127.0.0.1:{self.port}", "token": TOKEN,
                                    "library_paths": [str(self.library)],
                                    "path_map": [{"from": "/tv", "to": str(self.library / "tv")},
                                                 {"from": "/movies", "to": str(self.library / "movies")}]}
        table.update(integrations)
        self.config = write_config(tmp_path / "config.toml", emulator.base_url, self.inbox, tmp_path / "ledger.db",
                                   integrations=table)
        self.daemon: DaemonProcess | None = None

    def start(self) -> DaemonProcess:
        log = self.tmp / "daemon.log"
        if log.exists():
            log.write_bytes(b"")
        self.daemon = DaemonProcess(self.config, log)
        wait_until(lambda: self.daemon is not None and self.daemon.saw("integrations_listening"), 60,
                   message="the integrations endpoint")
        return self.daemon

    def stop(self) -> None:
        if self.daemon is not None:
            assert self.daemon.stop() == 0
            self.daemon = None

    def jobs(self) -> int:
        return len(self.emulator.jobs())

    def url(self, rest: str) -> str:
        return f"/{TOKEN}/{rest}"

    def events(self, name: str) -> list[dict[str, object]]:
        assert self.daemon is not None
        return [e for e in self.daemon.events() if e.get("event") == name]


@pytest.fixture
def setup(tmp_path: Path, emulator: Emulator) -> Iterator[Setup]:
    made = Setup(tmp_path, emulator)
    yield made
    made.stop()


def test_bazarr_detect_then_asr_is_one_job_and_asking_again_costs_nothing(setup: Setup) -> None:
    setup.start()
    audio = pcm_tone(6.0)
    status, kind, body = post_audio(setup.port, setup.url("detect-language?encode=false"), audio)
    assert status == 200, body
    assert json.loads(body) == {"detected_language": "english", "language_code": "en"}
    assert kind.startswith("application/json")
    assert setup.jobs() == 1
    assert setup.emulator.counters()["bytes_uploaded"] * 5 <= len(audio)     # Opus, not PCM

    status, kind, body = post_audio(setup.port, setup.url("asr?task=transcribe&language=en&output=srt&encode=false"),
                                    audio)
    assert status == 200 and kind.startswith("text/plain")
    cues = list(srt.parse(body.decode()))
    assert cues and "[emulated" in cues[0].content
    status, _, body = post_audio(setup.port, setup.url("asr?output=vtt&encode=false&language=en"), audio)
    assert status == 200
    captions = webvtt.from_string(body.decode())
    assert captions[0].text
    status, _, body = post_audio(setup.port, setup.url("asr?output=json&encode=false"), audio)
    whisper = json.loads(body)
    assert whisper["language"] == "en" and whisper["segments"] and whisper["text"]
    status, _, body = post_audio(setup.port, setup.url("asr?output=txt&encode=false"), audio)
    assert status == 200 and "[emulated transcript]" in body.decode()
    status, _, body = post_audio(setup.port, setup.url("asr?output=tsv&encode=false"), audio)
    rows = body.decode().splitlines()
    assert rows[0] == "start\tend\ttext" and all(len(row.split("\t")) == 3 for row in rows[1:])
    assert setup.jobs() == 1

    requests = setup.events("integration_request")
    assert len(requests) == 6 and all(TOKEN not in json.dumps(e) for e in setup.daemon.events())  # type: ignore[union-attr]
    setup.stop()
    setup.start()                              # a restart of transcribed: still nothing to pay
    status, _, body = post_audio(setup.port, setup.url("asr?output=srt&encode=false&language=en"), audio)
    assert status == 200 and list(srt.parse(body.decode()))
    assert setup.jobs() == 1
    report = json.loads(run_cli("status", "--config", str(setup.config), "--json").stdout)
    assert report["integrations"] == {"from_ledger": 6, "new_jobs": 1, "webhook_files": 0}
    assert not list((setup.tmp / "received").iterdir())       # spooled audio removed once done


def test_media_file_and_translation(setup: Setup) -> None:
    setup.start()
    wav = make_wav(setup.tmp / "clip.wav", seconds=3.0, tone=300.0).read_bytes()
    status, _, body = post_audio(setup.port, setup.url("asr?task=translate&language=fr&output=txt&encode=true"),
                                 wav, filename="clip.wav")
    assert status == 200, body
    assert "[emulated translation to en]" in body.decode()
    status, _, body = post_audio(setup.port, setup.url("asr?task=translate&language=fr&output=json"), wav,
                                 filename="clip.wav")
    assert json.loads(body)["language"] == "en"
    job = setup.emulator.jobs()[0]
    assert job["request_params"]["translation_config"]["target_languages"] == ["en"]   # type: ignore[index]
    assert job["request_params"]["language_config"]["languages"] == ["fr"]             # type: ignore[index]
    status, _, body = post_audio(setup.port, setup.url("asr?task=transcribe&output=txt&encode=true"), wav,
                                 filename="clip.wav")
    assert status == 200 and "[emulated transcript]" in body.decode() and "translation" not in body.decode()
    assert setup.jobs() == 1
    # Audio first transcribed without translation: translate needs one more job, once.
    audio = pcm_tone(3.0, frequency=520.0)
    assert post_audio(setup.port, setup.url("asr?language=de&output=srt&encode=false"), audio)[0] == 200
    assert setup.jobs() == 2
    for _ in range(2):
        status, _, body = post_audio(setup.port, setup.url("asr?task=translate&language=de&encode=false&output=txt"),
                                     audio)
        assert status == 200 and "[emulated translation to en]" in body.decode()
    assert setup.jobs() == 3


def test_detect_language_then_translate_is_one_job(setup: Setup) -> None:
    """Bazarr detects an unknown language, then asks for English subtitles of that audio: the detecting job
    carries the English translation, so the translate asr costs nothing more."""
    setup.start()
    audio = pcm_tone(4.0, frequency=610.0)
    status, _, body = post_audio(setup.port, setup.url("detect-language?encode=false"), audio)
    assert status == 200, body
    [job] = setup.emulator.jobs()
    assert job["request_params"]["translation"] is True                                  # type: ignore[index]
    assert "en" in job["request_params"]["translation_config"]["target_languages"]      # type: ignore[index]
    status, _, body = post_audio(setup.port, setup.url("asr?task=translate&language=de&encode=false&output=txt"),
                                 audio)
    assert status == 200 and "[emulated translation to en]" in body.decode()
    assert setup.jobs() == 1


def test_audio_that_cannot_be_decoded_is_refused_with_422(setup: Setup) -> None:
    setup.start()
    garbage = bytes(range(256)) * 20
    status, _, body = post_audio(setup.port, setup.url("asr?encode=true&output=srt"), garbage, filename="x.mp4")
    assert status == 422, body
    assert body.decode().startswith("cannot transcribe this audio")
    assert setup.jobs() == 0


def test_wrong_or_missing_token_reads_nothing(setup: Setup) -> None:
    setup.start()
    audio = pcm_tone(1.0)
    for path in ("/asr?encode=false", "/wrong-token-123456789/asr?encode=false", f"/{TOKEN}x/asr",
                 f"/{TOKEN[:-1]}/asr"):
        assert post_audio(setup.port, path, audio)[0] == 404
    assert post_json(setup.port, "/sonarr", {"eventType": "Test"})[0] == 404
    assert setup.jobs() == 0
    assert post_json(setup.port, setup.url("sonarr"), {"eventType": "Test", "instanceName": "Sonarr"})[0] == 200
    assert post_audio(setup.port, setup.url("asr?output=docx"), audio)[0] == 400
    assert not list((setup.tmp / "received").iterdir())


def test_listening_beyond_loopback_needs_a_token(tmp_path: Path, emulator: Emulator) -> None:
    config = write_config(tmp_path / "config.toml", emulator.base_url, tmp_path / "inbox", tmp_path / "ledger.db",
                          integrations={"listen": "0.0.0.0:9000"})
    result = run_cli("run", "--config", str(config))
    assert result.returncode == 78
    assert "integrations.token" in result.stderr


def test_sonarr_radarr_and_enqueue_transcribe_library_files_beside_them(setup: Setup) -> None:
    setup.start()
    episode = make_wav(setup.library / "tv" / "Show" / "Season 01" / "Show - S01E01.wav", seconds=2.0, tone=330.0)
    movie = make_wav(setup.library / "movies" / "Film (2021)" / "Film.wav", seconds=2.0, tone=350.0)
    extra = make_wav(setup.library / "clips" / "extra.wav", seconds=2.0, tone=370.0)
    status, answer = post_json(setup.port, setup.url("sonarr"),
                               sonarr_download("/tv/Show/Season 01/Show - S01E01.wav", upgrade=True))
    assert status == 200 and answer["queued"] == [str(episode)]
    status, answer = post_json(setup.port, setup.url("radarr"),
                               radarr_download("/movies/Film (2021)/Film.wav", "/movies/Film (2021)"))
    assert status == 200, answer
    assert post_json(setup.port, setup.url("enqueue"), {"paths": [str(extra)]})[0] == 200
    for source in (episode, movie, extra):
        wait_until(lambda source=source: source.with_suffix(".srt").is_file(), 60, message=f"outputs of {source}")
    assert setup.jobs() == 3
    # A rename of the same content: outputs for the new name, no new job.
    renamed = episode.with_name("Show - S01E01 - Pilot.wav")
    episode.rename(renamed)
    status, _ = post_json(setup.port, setup.url("sonarr"), sonarr_rename(
        [("/tv/Show/Season 01/Show - S01E01.wav", "/tv/Show/Season 01/Show - S01E01 - Pilot.wav")]))
    assert status == 200
    wait_until(lambda: renamed.with_suffix(".srt").is_file(), 60, message="outputs of the renamed file")
    assert setup.jobs() == 3
    assert post_json(setup.port, setup.url("sonarr"), {"eventType": "Grab", "series": {}})[0] == 200
    # A library of symbolic links (as debrid and rclone set-ups make): the outputs go beside the link, the
    # name media servers show, not beside its target.
    linked = setup.library / "tv" / "Linked" / "Linked - S01E01.wav"
    linked.parent.mkdir(parents=True)
    linked.symlink_to(make_wav(setup.library / "store" / "abc123.wav", seconds=2.0, tone=390.0))
    status, answer = post_json(setup.port, setup.url("sonarr"), sonarr_download("/tv/Linked/Linked - S01E01.wav"))
    assert status == 200 and answer["queued"] == [str(linked)], answer
    wait_until(lambda: linked.with_suffix(".srt").is_file(), 60, message="outputs beside the link")
    assert not (setup.library / "store" / "abc123.srt").exists()
    events = setup.events("integration_request")
    assert any(e.get("caller_event") == "Download" and e.get("path") == str(movie) for e in events)


def test_paths_outside_the_allowed_folders_are_refused_and_never_read(setup: Setup) -> None:
    setup.start()
    outside = make_wav(setup.tmp / "private" / "secret.wav", seconds=2.0)
    link = setup.library / "tv" / "link.wav"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside)
    cases = {
        str(outside): 403,                                            # outside, by name
        "/tv/../../private/secret.wav": 403,                          # `..` out of the mapped folder
        str(setup.library / ".." / "private" / "secret.wav"): 403,
        "/tv/link.wav": 403,                                          # a symbolic link out
        "/tv/missing.wav": 404,
        "/tv": 404,                                                   # a folder, not a file
        "relative/file.wav": 403,
    }
    for path, expected in cases.items():
        status, answer = post_json(setup.port, setup.url("enqueue"), {"path": path})
        assert status == expected, (path, answer)
    (setup.library / "tv" / "notes.txt").write_text("not media")
    assert post_json(setup.port, setup.url("enqueue"), {"path": "/tv/notes.txt"})[0] == 404
    assert setup.jobs() == 0
    refused = [e for e in setup.events("integration_request") if e.get("outcome") == "refused"]
    assert len(refused) == len(cases) + 1 and all(e.get("reason") for e in refused)
    assert not outside.with_suffix(".srt").exists()


def test_a_client_that_hangs_up_leaves_its_job_running_and_the_repeat_is_free(tmp_path: Path) -> None:
    settings = EmulatorSettings(api_keys=frozenset({KEY}), processing_seconds=3.0, data_dir=tmp_path / "emulator")
    with Emulator(settings) as emulator:
        made = Setup(tmp_path, emulator)
        try:
            made.start()
            audio = pcm_tone(4.0, frequency=610.0)
            send_then_hang_up(made.port, made.url("asr?output=srt&encode=false&language=en"), audio)
            wait_until(lambda: made.events("integration_client_gone"), 60, message="the hang-up noticed")
            wait_until(lambda: made.events("job_done"), 60, message="the job finishing without its client")
            status, _, body = post_audio(made.port, made.url("asr?output=srt&encode=false&language=en"), audio)
            assert status == 200 and list(srt.parse(body.decode()))
            assert made.jobs() == 1
        finally:
            made.stop()


def test_concurrent_requests_share_the_workers_limit(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    settings = EmulatorSettings(api_keys=frozenset({KEY}), processing_seconds=1.0, data_dir=tmp_path / "emulator")
    with Emulator(settings) as emulator:
        made = Setup(tmp_path, emulator)
        text = made.config.read_text() + "\n[workers]\nconcurrency = 1\n"
        made.config.write_text(text)
        try:
            made.start()
            audios = [pcm_tone(3.0, frequency=700.0 + 50 * index) for index in range(3)]
            with ThreadPoolExecutor(3) as running:
                answers = list(running.map(lambda audio: post_audio(
                    made.port, made.url("asr?output=srt&encode=false&language=en"), audio), audios))
            assert [status for status, _, _ in answers] == [200, 200, 200]
            jobs = sorted(emulator.jobs(), key=lambda job: str(job["created_at"]))
            assert len(jobs) == 3
            for earlier, later in itertools.pairwise(jobs):
                assert str(later["created_at"]) >= str(earlier["completed_at"])   # one at a time
        finally:
            made.stop()


def test_a_restart_while_the_job_runs_pays_nothing_twice(tmp_path: Path) -> None:
    settings = EmulatorSettings(api_keys=frozenset({KEY}), processing_seconds=4.0, data_dir=tmp_path / "emulator")
    with Emulator(settings) as emulator:
        made = Setup(tmp_path, emulator)
        try:
            made.start()
            audio = pcm_tone(4.0, frequency=830.0)
            send_then_hang_up(made.port, made.url("detect-language?encode=false"), audio)
            wait_until(lambda: made.events("job_created"), 60, message="the job created")
            made.stop()                                   # Bazarr gave up and transcribed restarts mid-job
            made.start()
            status, _, body = post_audio(made.port, made.url("asr?output=srt&encode=false&language=en"), audio)
            assert status == 200 and list(srt.parse(body.decode()))
            assert made.jobs() == 1
        finally:
            made.stop()
