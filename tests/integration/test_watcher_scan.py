"""`scan` (for `transcribed once`): one stat-only pass with the watcher's rules, complete by mtime."""

from __future__ import annotations

import os
import time
from pathlib import Path

from transcribed.config import InboxConfig
from transcribed.inbox.scan import scan


def test_scan_splits_complete_from_settling_with_the_watcher_rules(tmp_path: Path) -> None:
    inbox, outside = tmp_path / "inbox", tmp_path / "outside"
    (inbox / "sub" / "skip").mkdir(parents=True)
    outside.mkdir()
    old, fresh = inbox / "old.mp3", inbox / "sub" / "fresh.wav"
    old.write_bytes(b"o" * 10)
    fresh.write_bytes(b"f")
    os.utime(old, ns=(time.time_ns() - 60 * 10**9, time.time_ns() - 60 * 10**9))
    (inbox / "sub" / "skip" / ".transcribed-ignore").write_bytes(b"")
    (inbox / "sub" / "skip" / "hidden-away.mp3").write_bytes(b"x")
    (inbox / "talk.mp3.part").write_bytes(b"x")
    (inbox / "talk.srt").write_bytes(b"x")
    os.mkfifo(inbox / "pipe.mp3")
    (inbox / "dir.mp3").mkdir()
    (outside / "target.mp3").write_bytes(b"t")
    (inbox / "out.mp3").symlink_to(outside / "target.mp3")
    (inbox / "outdir").symlink_to(outside)

    config = InboxConfig(paths=(inbox,), recursive=True)
    ready, settling = scan(config, settled_before_ns=time.time_ns() - 30 * 10**9)
    assert [item.path for item in ready] == [old]
    assert (ready[0].root, ready[0].size) == (inbox, 10)
    assert settling == [fresh]

    everything, _ = scan(config, settled_before_ns=None)
    assert [item.path for item in everything] == [old, fresh]

    flat, flat_settling = scan(InboxConfig(paths=(inbox,), recursive=False), settled_before_ns=None)
    assert [item.path for item in flat] == [old]
    assert flat_settling == []


def test_scan_of_a_missing_inbox_is_empty(tmp_path: Path) -> None:
    assert scan(InboxConfig(paths=(tmp_path / "nowhere",)), settled_before_ns=None) == ([], [])
