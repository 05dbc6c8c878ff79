"""The clean-stop marker that lets a start skip PRAGMA quick_check: only for a ledger exactly as a clean stop
left it, and only once (a crash after the start leaves no marker)."""

from __future__ import annotations

import os
from pathlib import Path

from transcribed.ledger import Ledger
from transcribed.ledger import repair as ledger_repair


def test_a_ledger_left_as_a_clean_stop_left_it_is_known_clean_once(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    Ledger.open(path).close()
    assert not ledger_repair.left_clean(path)          # no marker: never stopped cleanly
    ledger_repair.note_clean(path)
    assert ledger_repair.left_clean(path)
    assert not ledger_repair.left_clean(path)          # the marker is used up: a crash now leaves none


def test_any_write_to_the_file_since_the_clean_stop_means_a_check(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    with Ledger.open(path) as ledger:
        ledger.set_meta("note", "x")
    ledger_repair.note_clean(path)
    data = path.read_bytes()
    path.write_bytes(data[:-4096] + bytes(4096))        # same size, new bytes: its mtime moves
    assert not ledger_repair.left_clean(path)
    path.write_bytes(data)                               # the sound bytes back (its mtime moves again)
    ledger_repair.note_clean(path)
    with Ledger.open(path) as ledger:                    # a later process that writes (e.g. `retry`)
        ledger.set_meta("note", "y")
    assert not ledger_repair.left_clean(path)


def test_a_write_ahead_log_holding_data_is_not_clean(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    Ledger.open(path).close()
    ledger_repair.note_clean(path)
    wal = path.with_name(path.name + "-wal")
    wal.write_bytes(os.urandom(4096))
    assert not ledger_repair.left_clean(path)
