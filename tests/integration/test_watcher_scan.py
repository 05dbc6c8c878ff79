"""`scan` (for `transcribed once`): one stat-only pass with the watcher's rules, complete by mtime."""

from __future__ import annotations

import os
import time
from pathlib import Path

from transcribed.config import InboxConfig
from transcribed.inbox.filters import NameFilter
from transcribed.inbox.scan import scan
from transcribed.inbox.walk import Root, Trust, version_key, walk


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


def _walk_once(inbox: Path, trust: Trust) -> tuple[set[str], set[str]]:
    """(names stat-ed, names taken as unchanged) of one walk of a flat inbox."""
    root = Root.of(inbox, 0)
    stated: set[str] = set()
    unchanged: set[str] = set()
    for listing in walk(root, recursive=True, names=NameFilter((), ()), trust=trust):
        stated.update(name for name, _ in listing.files)
        unchanged.update(listing.unchanged)
    return stated, unchanged


def test_a_trusting_walk_stats_only_new_and_replaced_names_and_its_turn(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for index in range(40):
        (inbox / f"f{index:02d}.mp3").write_bytes(b"x" * index)
    known = {str(inbox): {entry.name: version_key(entry.stat(follow_symlinks=False)) for entry in os.scandir(inbox)}}
    # rewritten in place (same inode): taken as unchanged except in its turn
    (inbox / "f01.mp3").write_bytes(b"changed")
    # replaced by rename: a new inode under a known name, always stat-ed
    (tmp_path / "new.mp3").write_bytes(b"new")
    os.replace(tmp_path / "new.mp3", inbox / "f02.mp3")
    (inbox / "brand-new.mp3").write_bytes(b"n")
    (inbox / "f03.mp3").unlink()

    slices = 4
    seen_in_turns: dict[str, list[int]] = {}
    for turn in range(slices):
        stated, unchanged = _walk_once(inbox, Trust(known, slices, turn))
        assert {"f02.mp3", "brand-new.mp3"} <= stated
        assert not stated & unchanged and "f03.mp3" not in stated | unchanged
        assert stated | unchanged == {f"f{i:02d}.mp3" for i in range(40) if i != 3} | {"brand-new.mp3"}
        for name in stated:
            seen_in_turns.setdefault(name, []).append(turn)
    # over a round of turns, every known file was stat-ed exactly once (the replaced one every time)
    for name in known[str(inbox)]:
        if name not in ("f02.mp3", "f03.mp3"):
            assert len(seen_in_turns[name]) == 1, name
    assert len(seen_in_turns["f02.mp3"]) == slices
    # with one slice nothing is trusted
    stated, unchanged = _walk_once(inbox, Trust(known, 1, 0))
    assert not unchanged and len(stated) == 40
