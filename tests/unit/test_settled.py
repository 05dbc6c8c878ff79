"""The settled set a start-up skips (pipeline/settled.py): built from the ledger, saved in it at a clean stop,
read back at the next start, and dropped by any later write of data so it is never stale."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from transcribed import config as configuration
from transcribed.ledger import Ledger
from transcribed.pipeline import settled

names = st.binary(min_size=1, max_size=60).filter(lambda raw: b"/" not in raw and b"\0" not in raw).map(os.fsdecode)
keys = st.binary(min_size=32, max_size=32)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(names.map(lambda name: "/inbox/" + name), st.dictionaries(names, keys, min_size=1),
                       max_size=5))
def test_the_saved_form_reads_back_exactly_whatever_the_names(known: settled.Known) -> None:
    assert settled.decode(settled.encode(known)) == known


def test_bytes_that_are_not_a_saved_set_read_as_none() -> None:
    blob = settled.encode({"/inbox": {"a.mp3": b"k" * 32}})
    for damaged in (b"", b"junk", blob[:-1], blob + b"x", blob.replace(b"a.mp3", b"a/mp3")[:-3]):
        assert settled.decode(damaged) is None


def _finished(ledger: Ledger, inbox: Path, name: str) -> Path:
    media = inbox / name
    media.write_bytes(name.encode())
    (inbox / (media.stem + ".txt")).write_text("words")
    info = media.stat()
    key = "sha256:" + name.encode().hex().ljust(64, "0")
    ledger.record_seen(key, str(media), str(inbox), info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
    ledger.store_result(key, {"id": name, "status": "done"})
    ledger.mark_done(key, {str(inbox / (media.stem + ".txt")): "sha256:" + "0" * 64})
    return media


def test_saved_at_a_stop_read_back_at_the_next_start_dropped_by_a_write(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    loaded = configuration.Config(inbox=configuration.InboxConfig(paths=(inbox,)))
    path = tmp_path / "ledger.sqlite3"
    with Ledger.open(path) as ledger:
        first = _finished(ledger, inbox, "first.mp3")
        known, built = settled.load(ledger, loaded)
        assert built and set(known[str(inbox)]) == {"first.mp3"}
        settled.save(ledger, known)
    with Ledger.open(path) as ledger:
        again, built = settled.load(ledger, loaded)
        assert not built and again == known
        ledger.set_meta("daemon_pid", "3")           # a meta value keeps it
    with Ledger.open(path) as ledger:
        assert settled.load(ledger, loaded) == (known, False)
        _finished(ledger, inbox, "second.mp3")     # a write of data drops it
    with Ledger.open(path) as ledger:
        fresh, built = settled.load(ledger, loaded)
        assert built and set(fresh[str(inbox)]) == {"first.mp3", "second.mp3"}
    assert first.exists()
