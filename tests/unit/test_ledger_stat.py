"""The stat fast path on real files: a known file (or the same file renamed) is recognised without hashing;
a replaced file is not. And the fingerprint that names contents."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from transcribed.errors import MediaError
from transcribed.fingerprint import (
    CHUNK_SIZE,
    FingerprintCancelledError,
    fingerprint,
    fingerprint_file,
    is_key,
)
from transcribed.ledger import Ledger


class Scanner:
    """What the pipeline does per file: stat, ask the ledger, hash only when it does not know."""

    def __init__(self, ledger: Ledger, root: Path) -> None:
        self.ledger = ledger
        self.root = root
        self.hashed: list[str] = []

    def key_of(self, path: Path) -> str:
        info = path.stat()
        key = self.ledger.lookup_stat(str(path), info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        if key is None:
            fingerprinted = fingerprint_file(path)
            self.hashed.append(path.name)
            key = fingerprinted.key
        self.ledger.record_seen(key, str(path), str(self.root), info.st_dev, info.st_ino, info.st_size,
                                info.st_mtime_ns)
        return key


@pytest.fixture
def scanner(tmp_path: Path) -> Iterator[Scanner]:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    with Ledger.open(tmp_path / "ledger.sqlite3") as ledger:
        yield Scanner(ledger, inbox)


def test_known_file_is_not_hashed_again(scanner: Scanner) -> None:
    media = scanner.root / "talk.mp3"
    media.write_bytes(b"ID3" + os.urandom(5000))
    first = scanner.key_of(media)
    assert scanner.key_of(media) == first
    assert scanner.hashed == ["talk.mp3"]


def test_renamed_file_is_recognised_without_hashing(scanner: Scanner) -> None:
    media = scanner.root / "talk.mp3"
    media.write_bytes(os.urandom(5000))
    key = scanner.key_of(media)
    (scanner.root / "sub").mkdir()
    moved = scanner.root / "sub" / "renamed talk.mp3"
    media.rename(moved)
    assert scanner.key_of(moved) == key
    assert scanner.hashed == ["talk.mp3"]
    entry = scanner.ledger.get(key)
    assert entry is not None and entry.paths[0] == str(moved)


def test_replaced_file_is_hashed_and_is_new_content(scanner: Scanner) -> None:
    media = scanner.root / "talk.mp3"
    media.write_bytes(os.urandom(5000))
    old_key = scanner.key_of(media)
    info = media.stat()
    media.write_bytes(os.urandom(5000))  # same name, same size, new bytes, in place (same inode)
    os.utime(media, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000))
    new_key = scanner.key_of(media)
    assert new_key != old_key
    assert scanner.hashed == ["talk.mp3", "talk.mp3"]
    entry = scanner.ledger.entry_for_path(str(media))
    assert entry is not None and entry.key == new_key and entry.state == "discovered"


def test_replaced_by_rename_over_is_hashed(scanner: Scanner) -> None:
    media = scanner.root / "talk.mp3"
    media.write_bytes(os.urandom(5000))
    old_key = scanner.key_of(media)
    staging = scanner.root.parent / "staging.mp3"
    staging.write_bytes(os.urandom(5000))
    staging.replace(media)  # new inode at the old name
    assert scanner.key_of(media) != old_key
    assert len(scanner.hashed) == 2


def test_identical_copy_is_the_same_content(scanner: Scanner) -> None:
    data = os.urandom(5000)
    (scanner.root / "a.mp3").write_bytes(data)
    (scanner.root / "b.mp3").write_bytes(data)
    assert scanner.key_of(scanner.root / "a.mp3") == scanner.key_of(scanner.root / "b.mp3")
    assert scanner.ledger.counts()["discovered"] == 1


def test_fingerprint_matches_sha256_across_chunk_boundaries(tmp_path: Path) -> None:
    for size in (0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 17):
        path = tmp_path / f"f{size}"
        data = os.urandom(size)
        path.write_bytes(data)
        key = fingerprint(path)
        assert key == "sha256:" + hashlib.sha256(data).hexdigest()
        assert is_key(key)
        result = fingerprint_file(path)
        info = path.stat()
        assert (result.size, result.device, result.inode, result.mtime_ns) == (
            size, info.st_dev, info.st_ino, info.st_mtime_ns)


def test_fingerprint_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.mp3"
    os.mkfifo(fifo)
    with pytest.raises(MediaError):
        fingerprint(fifo)  # returns at once: never waits for a writer
    (tmp_path / "folder.mp3").mkdir()
    with pytest.raises(MediaError):
        fingerprint(tmp_path / "folder.mp3")
    with pytest.raises(FileNotFoundError):
        fingerprint(tmp_path / "absent.mp3")


def test_fingerprint_stops_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "big.mp3"
    path.write_bytes(b"\0" * (2 * CHUNK_SIZE))
    stop = threading.Event()
    stop.set()
    with pytest.raises(FingerprintCancelledError):
        fingerprint_file(path, stop=stop)


def test_is_key() -> None:
    assert not is_key("sha256:abc")
    assert not is_key("md5:" + "a" * 64)
    assert not is_key("sha256:" + "A" * 64)
