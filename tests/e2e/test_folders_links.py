"""Per-folder settings and link files end to end (issue 16): the installed CLI against the emulator over real
HTTP; what Gladia was asked comes from the emulator's stored jobs and counters."""

from __future__ import annotations

import http.server
import json
import plistlib
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import DaemonProcess, make_wav, run_cli, wait_until, write_config

from transcribed.emulator import Emulator
from transcribed.inbox.links import normalise


def _config(tmp_path: Path, emulator: Emulator, **sections: dict) -> tuple[Path, Path]:
    inbox = tmp_path / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    sections.setdefault("transcription", {"languages": ["en"]})
    config = write_config(tmp_path / "config.toml", emulator.base_url, inbox, tmp_path / "state" / "ledger.db",
                          **sections)
    return config, inbox


def _job_for(emulator: Emulator, filename: str) -> list[dict]:
    return [job for job in emulator.jobs() if (job.get("file") or {}).get("filename") == filename]  # type: ignore[union-attr]


def _languages(job: dict) -> list[str]:
    return job["request_params"]["language_config"]["languages"]


def test_a_french_subfolder_gets_its_language_and_formats_while_a_sibling_keeps_the_main_config(
        tmp_path: Path, emulator: Emulator) -> None:
    config, inbox = _config(tmp_path, emulator)
    (inbox / "fr").mkdir()
    (inbox / "fr" / ".transcribed.toml").write_text('[transcription]\nlanguages = ["fr"]\n\n'
                                                    '[output]\nformats = ["txt", "srt"]\n')
    french = make_wav(inbox / "fr" / "reunion.wav", tone=300)
    english = make_wav(inbox / "en" / "meeting.wav", tone=500)
    # The same bytes in both folders: asked in French and in English, they are two jobs (two requests paid).
    twin = inbox / "en" / "reunion-copy.wav"
    shutil.copyfile(french, twin)

    result = run_cli("once", "--config", str(config), timeout=180)
    assert result.returncode == 0, result.stdout[-3000:]

    assert [_languages(j) for j in _job_for(emulator, "reunion.wav")] == [["fr"]]
    assert [_languages(j) for j in _job_for(emulator, "meeting.wav")] == [["en"]]
    assert [_languages(j) for j in _job_for(emulator, "reunion-copy.wav")] == [["en"]]
    assert emulator.counters()["jobs_created"] == 3
    assert sorted(p.name for p in french.parent.iterdir()) == [".transcribed.toml", "reunion.srt", "reunion.txt",
                                                               "reunion.wav"]
    for source in (english, twin):
        assert all(source.with_suffix(f".{fmt}").is_file() for fmt in ("txt", "srt", "vtt", "json"))

    explained = run_cli("explain", "--config", str(config), str(french)).stdout
    folder_file = str(inbox / "fr" / ".transcribed.toml")
    assert f'transcription.language_config.languages = ["fr"]  ({folder_file})' in explained
    assert f'output.formats = ["txt", "srt"]  ({folder_file})' in explained
    assert "output.name = " in explained and "main config" in explained

    # A second run costs nothing; the same bytes again in the French folder are the French content already paid.
    shutil.copyfile(french, inbox / "fr" / "reunion-again.wav")
    assert run_cli("once", "--config", str(config), timeout=180).returncode == 0
    assert emulator.counters()["jobs_created"] == 3
    assert (inbox / "fr" / "reunion-again.txt").is_file() and not (inbox / "fr" / "reunion-again.json").exists()

    # A change of the folder's settings reaches finished files only through `render` (no new job).
    (inbox / "fr" / ".transcribed.toml").write_text('[transcription]\nlanguages = ["fr"]\n\n'
                                                    '[output]\nformats = ["vtt"]\n')
    rendered = run_cli("render", "--config", str(config), str(french))
    assert rendered.returncode == 0, rendered.stderr
    assert french.with_suffix(".vtt").is_file() and not english.with_suffix(".md").exists()
    assert emulator.counters()["jobs_created"] == 3


def test_invalid_folder_settings_hold_its_files_with_the_reason_until_fixed(tmp_path: Path,
                                                                            emulator: Emulator) -> None:
    config, inbox = _config(tmp_path, emulator)
    settings = inbox / "team" / ".transcribed.toml"
    settings.parent.mkdir()
    settings.write_text('[transcription]\nlanguages = "fr"\nspeakers = 2\n\n[output]\nformats = ["doc"]\n')
    held = make_wav(inbox / "team" / "standup.wav", tone=350)
    free = make_wav(inbox / "other" / "talk.wav", tone=650)
    once = run_cli("once", "--config", str(config), timeout=180)
    assert once.returncode == 1 and "folder_settings_invalid" in once.stdout    # held: not done, not paid
    daemon = DaemonProcess(config, tmp_path / "run.log")

    wait_until(lambda: free.with_suffix(".txt").exists(), message="the sibling folder's file transcribed")
    invalid = wait_until(lambda: [e for e in daemon.events() if e.get("event") == "folder_settings_invalid"],
                         message="the invalid settings logged")
    problems = " ".join(invalid[0]["problems"])
    assert str(settings) in problems
    assert "transcription.languages: expected a list" in problems
    assert "transcription.speakers: unknown key" in problems and "output.formats" in problems
    explained = run_cli("explain", "--config", str(config), str(held)).stdout
    assert "invalid" in explained and "transcription.speakers: unknown key" in explained
    assert not held.with_suffix(".txt").exists()
    assert emulator.counters()["jobs_created"] == 1

    settings.write_text('[transcription]\nlanguages = ["fr"]\n\n[output]\nformats = ["txt"]\n')
    wait_until(lambda: held.with_suffix(".txt").exists(), message="the held file goes once fixed")
    assert daemon.stop() == 0
    assert [_languages(j) for j in _job_for(emulator, "standup.wav")] == [["fr"]]
    assert not held.with_suffix(".srt").exists()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def media_site(tmp_path: Path) -> Iterator[str]:
    """A small web server on 127.0.0.1 holding recordings (what Gladia would fetch)."""
    site = tmp_path / "site"
    make_wav(site / "talk.wav", tone=420)
    make_wav(site / "other.wav", tone=840)

    def handler(*args: object, **kwargs: object) -> _Quiet:
        return _Quiet(*args, directory=str(site), **kwargs)  # type: ignore[arg-type]

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_url_and_webloc_files_are_transcribed_by_url_with_no_upload(tmp_path: Path, emulator: Emulator,
                                                                     media_site: str) -> None:
    config, inbox = _config(tmp_path, emulator)
    (inbox / "Talk.url").write_text(f"[InternetShortcut]\r\nURL={media_site}/talk.wav\r\n")
    # The same URL, written differently (scheme case, fragment): one job for both links.
    same = media_site.replace("http://", "HTTP://") + "/talk.wav#t=10"
    (inbox / "Talk again.webloc").write_bytes(plistlib.dumps({"URL": same}))
    (inbox / "Other.webloc").write_bytes(plistlib.dumps({"URL": f"{media_site}/other.wav"},
                                                        fmt=plistlib.FMT_BINARY))
    (inbox / "Gone.url").write_text(f"[InternetShortcut]\nURL={media_site}/missing.wav\n")
    (inbox / "Local.url").write_text("[InternetShortcut]\nURL=file:///etc/passwd\n")
    (inbox / "Broken.webloc").write_bytes(b"this is not a property list")

    result = run_cli("once", "--config", str(config), timeout=180)
    assert result.returncode == 1, result.stdout[-3000:]        # three links fail, each with its reason

    counters = emulator.counters()
    assert counters.get("POST /v2/upload", 0) == 0 and counters.get("files_uploaded", 0) == 0
    assert counters["jobs_created"] == 3                         # talk, other, missing
    sent = sorted(normalise(j["request_params"]["audio_url"]) for j in emulator.jobs())  # type: ignore[index]
    assert sent == sorted(f"{media_site}/{name}" for name in ("missing.wav", "other.wav", "talk.wav"))
    for name in ("Talk", "Talk again", "Other"):
        assert (inbox / f"{name}.txt").is_file(), name
        assert json.loads((inbox / f"{name}.json").read_text())["status"] == "done"
    assert (inbox / "Talk.txt").read_text() == (inbox / "Talk again.txt").read_text()

    status = json.loads(run_cli("status", "--config", str(config), "--json").stdout)
    reasons = {Path(f["path"]).name if "path" in f else str(f): f["reason"] for f in status["failures"]}
    text = json.dumps(reasons)
    assert "only http and https URLs" in text and "file:" in text
    assert "not a property list" in text
    assert "Gladia could not fetch" in text and "error_code 4" in text
    explained = run_cli("explain", "--config", str(config), str(inbox / "Local.url")).stdout
    assert "only http and https URLs" in explained

    # A restart, and another link to the same URL: no new job.
    (inbox / "Third.url").write_text(f"[InternetShortcut]\nURL={media_site}/talk.wav?\n")
    run_cli("once", "--config", str(config), timeout=180)
    assert emulator.counters()["jobs_created"] == 3
    assert (inbox / "Third.txt").is_file()


def test_work_resumed_after_a_restart_waits_for_invalid_folder_settings(tmp_path: Path, emulator: Emulator) -> None:
    config, inbox = _config(tmp_path, emulator)
    source = make_wav(inbox / "team" / "standup.wav", tone=380)
    crashed = run_cli("once", "--config", str(config), timeout=180, TRANSCRIBED_CRASH_AT="after_upload")
    assert crashed.returncode == 97, crashed.stdout[-2000:]
    settings = inbox / "team" / ".transcribed.toml"
    settings.write_text("[transcription]\nlanguages = [\"fr\"]\nspeakers = 2\n")
    daemon = DaemonProcess(config, tmp_path / "run.log")
    wait_until(lambda: daemon.saw("folder_settings_invalid"), message="the resumed file held")
    assert emulator.counters().get("jobs_created", 0) == 0
    assert "transcription.speakers: unknown key" in run_cli("explain", "--config", str(config), str(source)).stdout
    settings.write_text("[transcription]\nlanguages = [\"fr\"]\n")
    wait_until(lambda: source.with_suffix(".txt").exists(), message="the file goes once fixed")
    assert daemon.stop() == 0
    assert [_languages(j) for j in _job_for(emulator, "standup.wav")] == [["fr"]]
