"""Outputs record the source path they were written for (ledger schema version 3), and an older ledger is
migrated in place, its outputs attributed where that is certain (issue 12, part 2)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from transcribed.ledger import Ledger


def make_older(path: Path, version: int) -> None:
    """Turn a fresh ledger into what version 2 (no outputs.source) or 1 (no spending, no holds either) wrote."""
    conn = sqlite3.connect(path)
    conn.execute("DROP INDEX outputs_by_source")
    conn.execute("ALTER TABLE outputs DROP COLUMN source")
    if version == 1:
        conn.executescript("DROP TABLE spending; DROP TABLE holds;")
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()


def test_claimed_outputs_belong_to_their_source_path(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "ledger.sqlite3") as ledger:
        ledger.record_seen("sha256:a", "/in/talk.wav", "/in", 1, 2, 3, 4)
        ledger.claim_outputs("sha256:a", "/in/talk.wav", {"/in/talk.txt": "d1", "/in/talk.srt": "d2"})
        ledger.mark_done("sha256:a", {"/in/talk.txt": "d1", "/in/talk.srt": "d2"})   # keeps the source
        assert ledger.outputs_of_source("/in/talk.wav") == {"/in/talk.txt": ("sha256:a", "d1"),
                                                            "/in/talk.srt": ("sha256:a", "d2")}
        ledger.claim_outputs("sha256:b", "/in/talk.wav", {"/in/talk.txt": "d3"}, released=["/in/talk.srt"])
        assert ledger.outputs_of_source("/in/talk.wav") == {"/in/talk.txt": ("sha256:b", "d3")}
        assert ledger.output_owner("/in/talk.srt") is None


@pytest.mark.parametrize("version", [1, 2])
def test_an_older_ledger_is_migrated_when_opened_for_writing(tmp_path: Path, version: int) -> None:
    path = tmp_path / "ledger.sqlite3"
    with Ledger.open(path) as ledger:
        ledger.record_seen("sha256:one", "/in/talk.wav", "/in", 1, 2, 3, 4)
        ledger.mark_done("sha256:one", {"/in/talk.txt": "d1"})
        ledger.record_seen("sha256:two", "/in/a.wav", "/in", 1, 5, 3, 4)
        ledger.record_seen("sha256:two", "/in/b.wav", "/in", 1, 6, 3, 4)
        ledger.mark_done("sha256:two", {"/in/a.txt": "d2", "/in/b.txt": "d3"})
    make_older(path, version)
    if version == 2:
        with Ledger.open(path, read_only=True) as reader:       # `status` while an older daemon still runs
            assert reader.counts()["done"] == 2
    with Ledger.open(path) as ledger:
        assert ledger.outputs_of_source("/in/talk.wav") == {"/in/talk.txt": ("sha256:one", "d1")}
        assert ledger.outputs_of_source("/in/a.wav") == {}     # two paths: which one wrote it is not certain
        assert ledger.output_owner("/in/b.txt") == "sha256:two"
