"""Output sets are claimed whole (issue 12, parts 2 and 3), on the real ledger and the real filesystem.

Two same-stem sources finishing at the same moment each get a complete set of their own (all plain names or
all alternate names, never a mix, nothing stale); a source replaced in place takes its old outputs over at
the usual names unless a person edited them.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from transcribed.config import Config, InboxConfig, OutputConfig
from transcribed.ledger import Ledger
from transcribed.outputs.claim import FolderLocks
from transcribed.pipeline.publishing import publish_outputs

FORMATS = ("txt", "srt", "vtt", "json", "md")


def body(job_id: str, text: str) -> dict[str, Any]:
    words = [{"word": ("" if i == 0 else " ") + token, "start": i * 0.5, "end": i * 0.5 + 0.4, "confidence": 0.9}
             for i, token in enumerate(text.split(" "))]
    return {"id": job_id, "status": "done", "request_params": {},
            "result": {"metadata": {"audio_duration": 5.0},
                       "transcription": {"languages": ["en"], "full_transcript": text,
                                         "utterances": [{"words": words, "text": text, "language": "en",
                                                         "start": 0.0, "end": 4.9, "confidence": 0.9,
                                                         "channel": 0}]}}}


def seen(ledger: Ledger, key: str, source: Path, job_id: str, text: str) -> None:
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(key.encode())
    info = source.stat()
    ledger.record_seen(key, str(source), str(source.parent), info.st_dev, info.st_ino, info.st_size,
                       info.st_mtime_ns)
    ledger.store_result(key, body(job_id, text))


def job_of(output: Path) -> str:
    """Which recording an output holds: the job id (json) or the transcript's words (the others)."""
    text = output.read_text()
    if output.suffix == ".json":
        return str(json.loads(text)["id"])
    return "job-wav" if "wav words" in text else "job-mp3" if "mp3 words" in text else "?"


@pytest.fixture
def ledger(tmp_path: Path) -> Any:
    with Ledger.open(tmp_path / "ledger.sqlite3") as opened:
        yield opened


def test_two_same_stem_sources_finishing_together_never_mix_their_outputs(tmp_path: Path, ledger: Ledger) -> None:
    inbox = tmp_path / "inbox"
    config = Config(inbox=InboxConfig(paths=(inbox,)), output=OutputConfig(formats=FORMATS))
    locks = FolderLocks()          # one per process, shared by every worker (Context.output_locks)
    for round_number in range(50):
        folder = inbox / f"round-{round_number}"
        wav, mp3 = folder / "talk.wav", folder / "talk.mp3"
        seen(ledger, f"sha256:wav{round_number}", wav, "job-wav", "the wav words are these")
        seen(ledger, f"sha256:mp3{round_number}", mp3, "job-mp3", "and the mp3 words are those")
        barrier = threading.Barrier(2)
        failures: list[BaseException] = []

        def finish(key: str, barrier: threading.Barrier = barrier, failures: list[BaseException] = failures) -> None:
            try:
                barrier.wait(10)
                publish_outputs(ledger, config, key, locks=locks)
            except BaseException as exc:   # reported below, in the test's thread
                failures.append(exc)

        threads = [threading.Thread(target=finish, args=(f"sha256:{kind}{round_number}",)) for kind in ("wav", "mp3")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not failures, failures
        plain = {fmt: folder / f"talk.{fmt}" for fmt in FORMATS}
        holders = {job_of(path) for path in plain.values()}
        assert len(holders) == 1, f"round {round_number}: the plain names mix {sorted(holders)}"
        winner, loser = (wav, mp3) if holders == {"job-wav"} else (mp3, wav)
        alternate = {fmt: folder / f"{loser.name}.{fmt}" for fmt in FORMATS}
        assert {job_of(path) for path in alternate.values()} == {"job-" + loser.suffix[1:]}
        expected = {wav.name, mp3.name, *(p.name for p in plain.values()), *(p.name for p in alternate.values())}
        assert {p.name for p in folder.iterdir()} == expected, f"round {round_number}: stale or missing files"
        for source, names in ((winner, plain), (loser, alternate)):
            entry = ledger.entry_for_path(str(source))
            assert entry is not None and entry.state == "done"
            assert set(entry.outputs) == {str(p) for p in names.values()}


def test_new_content_at_the_same_path_takes_its_outputs_over_unless_edited(tmp_path: Path, ledger: Ledger) -> None:
    inbox = tmp_path / "inbox"
    config = Config(inbox=InboxConfig(paths=(inbox,)), output=OutputConfig(formats=FORMATS))
    talk = inbox / "talk.wav"
    seen(ledger, "sha256:old", talk, "job-old", "the wav words of the old meeting")
    publish_outputs(ledger, config, "sha256:old")
    edited = inbox / "talk.md"
    edited.write_text("my own notes\n")
    seen(ledger, "sha256:new", talk, "job-new", "the wav words of the new meeting")
    publish_outputs(ledger, config, "sha256:new")
    assert json.loads((inbox / "talk.json").read_text())["id"] == "job-new"
    assert "new meeting" in (inbox / "talk.txt").read_text()
    assert edited.read_text() == "my own notes\n"                         # a person's edit is never lost
    assert sorted(p.name for p in inbox.iterdir() if p.name.startswith("talk.wav")) == ["talk.wav"]
    assert [reason for _, reason in ledger.conflicts("sha256:new")] == ["changed since transcribed wrote it "
                                                                        "(left as it is)"]


def test_a_smaller_new_set_leaves_no_stale_output_of_the_old_content(tmp_path: Path, ledger: Ledger) -> None:
    inbox = tmp_path / "inbox"
    talk = inbox / "talk.wav"
    seen(ledger, "sha256:old", talk, "job-old", "the wav words of the old meeting")
    publish_outputs(ledger, Config(inbox=InboxConfig(paths=(inbox,)), output=OutputConfig(formats=FORMATS)),
                    "sha256:old")
    seen(ledger, "sha256:new", talk, "job-new", "the wav words of the new meeting")
    fewer = Config(inbox=InboxConfig(paths=(inbox,)), output=OutputConfig(formats=("txt", "json")))
    publish_outputs(ledger, fewer, "sha256:new")
    assert sorted(p.name for p in inbox.iterdir()) == ["talk.json", "talk.txt", "talk.wav"]
    assert ledger.output_owner(str(inbox / "talk.srt")) is None
