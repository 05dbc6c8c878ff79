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
    """(names given as new or changed, names taken as unchanged) of one walk of a flat inbox."""
    root = Root.of(inbox, 0)
    changed: set[str] = set()
    unchanged: set[str] = set()
    for listing in walk(root, recursive=True, names=NameFilter((), ()), trust=trust):
        changed.update(name for name, _ in listing.files)
        unchanged.update(listing.unchanged)
    return changed, unchanged


def test_a_trusting_walk_finds_new_and_replaced_names_at_once_and_rewrites_in_their_turn(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for index in range(40):
        (inbox / f"f{index:02d}.mp3").write_bytes(b"x" * index)
    known = {str(inbox): {entry.name: version_key(entry.stat(follow_symlinks=False)) for entry in os.scandir(inbox)}}
    (inbox / "f01.mp3").write_bytes(b"changed")                  # rewritten in place: the same inode
    (tmp_path / "new.mp3").write_bytes(b"new")
    os.replace(tmp_path / "new.mp3", inbox / "f02.mp3")          # replaced by rename: a new inode
    (inbox / "brand-new.mp3").write_bytes(b"n")
    (inbox / "f03.mp3").unlink()
    everything = {f"f{i:02d}.mp3" for i in range(40) if i != 3} | {"brand-new.mp3"}

    slices = 4
    rewrite_found = 0
    for turn in range(slices):
        changed, unchanged = _walk_once(inbox, Trust(known, slices, turn))
        assert changed - {"f01.mp3"} == {"f02.mp3", "brand-new.mp3"}
        assert changed | unchanged == everything and not changed & unchanged
        rewrite_found += "f01.mp3" in changed
    assert rewrite_found == 1                                      # once in a round of turns
    # one slice: every file is stat-ed, so the rewrite is found at once
    changed, unchanged = _walk_once(inbox, Trust(known, 1, 0))
    assert changed == {"f01.mp3", "f02.mp3", "brand-new.mp3"} and changed | unchanged == everything


def test_a_scan_split_with_a_child_process_finds_exactly_what_one_process_finds(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    files: list[Path] = []
    for group in range(3):
        for folder in range(12):
            for index in range(5):
                path = inbox / f"g{group}" / f"f{folder:02d}" / f"r{index}.mp3"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"x" * (index + 1))
                (path.parent / f"r{index}.txt").write_text("transcript")
                files.append(path)
    (inbox / "top.wav").write_bytes(b"top")
    (inbox / "g1" / "skipped").mkdir()
    (inbox / "g1" / "skipped" / ".transcribed-ignore").touch()
    (inbox / "g1" / "skipped" / "hidden.mp3").write_bytes(b"h")
    (inbox / "g2" / "f03" / "out.mp3").symlink_to(tmp_path / "elsewhere.mp3")
    known: dict[str, dict[str, bytes]] = {}
    for path in files:
        known.setdefault(str(path.parent), {})[path.name] = version_key(path.lstat())
    files[3].write_bytes(b"rewritten in place")          # same inode, new version
    files[40].unlink()
    (inbox / "g0" / "f05" / "new.mp3").write_bytes(b"new")
    config = InboxConfig(paths=(inbox,))

    def outcome(split_from: int) -> tuple[list[tuple[Path, int]], list[Path]]:
        ready, settling = scan(config, settled_before_ns=time.time_ns() + 10**9, known=known, split_from=split_from)
        return [(item.path, item.size) for item in ready], settling

    alone, split = outcome(10**9), outcome(1)
    assert split == alone
    assert alone[0] == [(files[3], len(b"rewritten in place")), (inbox / "g0" / "f05" / "new.mp3", 3),
                        (inbox / "top.wav", 3)]


def test_a_folder_unchanged_since_it_was_listed_is_skipped_until_its_turn(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    for index in range(5):
        (folder / f"r{index}.mp3").write_bytes(b"x" * index)
    known = {str(folder): {entry.name: version_key(entry.stat(follow_symlinks=False)) for entry in os.scandir(folder)}}
    old = time.time() - 3600
    os.utime(folder, (old, old))                       # listed long after its last change
    folders: dict[str, tuple[int, int, tuple[str, ...]]] = {}
    slices = 4
    mine = hash(str(folder)) % slices
    other = (mine + 1) % slices
    root = Root.of(folder, 0)

    def walked(turn: int) -> tuple[bool, set[str]]:
        listings = list(walk(root, recursive=True, names=NameFilter((), ()), trust=Trust(known, slices, turn, folders)))
        return listings[0].skipped, {name for listing in listings for name, _ in listing.files}

    assert walked(other) == (False, set())             # listed, and recorded as clean
    assert walked(other) == (True, set())              # unchanged folder: not listed again
    (folder / "r1.mp3").write_bytes(b"rewritten in place")
    os.utime(folder, (old, old))                       # (a rewrite in place never touches the folder)
    assert walked(other) == (True, set())              # the file events would report this one ...
    assert walked(mine) == (False, {"r1.mp3"})         # ... and the folder's turn finds it anyway
    (folder / "new.mp3").write_bytes(b"n")             # an entry added: the folder's mtime moves
    assert walked(other) == (False, {"new.mp3"})           # listed: the new name is seen at once
    assert walked(other)[0] is False                   # changed within RACY_SECONDS: listed again
