"""What a start-up may skip: every inbox path whose content is finished (done with its outputs, or
skipped), as `directory -> name -> version key` (the key packs device, inode, size and mtime_ns).

Built from the ledger by one query (`build`, about a second per 100,000 files), or read back from the
copy saved in the ledger when the daemon last stopped (`load`, tens of milliseconds). The saved copy is
dropped by the ledger's first write of data in any later process, so it is never stale.
"""

from __future__ import annotations

import os
import struct
from array import array
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from transcribed.config import Config
from transcribed.ledger import Ledger

Known = Mapping[str, Mapping[str, bytes]]

_VERSION = struct.Struct("=QQQq")
_KEY_SIZE = _VERSION.size
_MAGIC = b"transcribed-settled-2\0"
_LENGTHS = struct.Struct("=IIIII")


def inbox_root(config: Config, source: Path) -> Path | None:
    """The inbox (or integrations.library_paths) folder a source belongs to (the deepest match), or None when
    it is outside every one."""
    best: Path | None = None
    for root in (*config.inbox.paths, *config.integrations.library_paths):
        if source.is_relative_to(root) and (best is None or len(root.parts) > len(best.parts)):
            best = root
    return best


def has_outputs_for(config: Config, outputs: Iterable[str], path: str) -> bool:
    """True when the ledger records outputs written for this source path (named after its stem or its full
    name, in its output folder). Trusts the ledger, with no stat per output: `transcribed render` re-writes
    outputs a user deleted. Plain strings: this runs once per file when the set is built."""
    if config.output.directory is None:
        directory = os.path.dirname(path)  # noqa: PTH120 - strings, as above
    else:
        from transcribed.outputs.naming import output_directory

        source = Path(path)
        root = inbox_root(config, source)
        if root is None:
            return True
        directory = str(output_directory(source, root, config.output.directory))
    name = os.path.basename(path)  # noqa: PTH119 - strings, as above
    dot = name.rfind(".")
    prefixes = (directory + os.sep + (name[:dot] if dot > 0 else name) + ".", directory + os.sep + name + ".")
    return any(output.startswith(prefixes) and os.sep not in output[len(directory) + 1:] for output in outputs)


def build(ledger: Ledger, config: Config) -> Known:
    """The set from the ledger's rows (the slow path: after a crash, or the first start)."""
    paths, outputs = ledger.finished_paths()
    known: dict[str, dict[str, bytes]] = {}
    pack = _VERSION.pack
    for path, (identity, key, state) in paths.items():
        if state == "skipped" or has_outputs_for(config, outputs.get(key, ()), path):
            try:
                version = pack(*identity)
            except struct.error:
                continue   # beyond 64 bits: left to the stat path
            directory, _, name = path.rpartition("/")
            known.setdefault(directory or "/", {})[name] = version
    return known


def load(ledger: Ledger, config: Config) -> tuple[Known, bool]:
    """The set, read back from the ledger's saved copy when there is a valid one, else built; and whether
    it was built (then worth saving). Call before the ledger's first write in this process."""
    blob = ledger.settled_blob()
    if blob is not None:
        known = decode(blob)
        if known is not None:
            return known, False
    return build(ledger, config), True


def save(ledger: Ledger, known: Known) -> None:
    """Keep the set in the ledger for the next start."""
    ledger.save_settled_blob(encode(known))


def encode(known: Known) -> bytes:
    """The set as bytes: a magic line, five section lengths, then the folders ("\\0"-joined), the number of
    files in each, the byte length of each folder's names, the names ("\\0"-joined, per folder), the keys."""
    directories: list[str] = []
    counts, spans = array("I"), array("I")
    chunks: list[bytes] = []
    keys: list[bytes] = []
    for directory, entries in known.items():
        directories.append(directory)
        counts.append(len(entries))
        chunk = "\0".join(entries).encode("utf-8", "surrogateescape")
        spans.append(len(chunk))
        chunks.append(chunk)
        keys.extend(entries.values())
    sections = ["\0".join(directories).encode("utf-8", "surrogateescape"), counts.tobytes(), spans.tobytes(),
                b"".join(chunks), b"".join(keys)]
    return _MAGIC + _LENGTHS.pack(*map(len, sections)) + b"".join(sections)


class Saved(Mapping[str, Mapping[str, bytes]]):
    """A set read back from the ledger: each folder's names and keys are decoded when first asked for, so
    a scan split between two processes decodes each half once."""

    def __init__(self, directories: list[str], counts: array[int], spans: array[int], names: bytes,
                 keys: bytes) -> None:
        self._where: dict[str, tuple[int, int, int, int]] = {}
        name_at = key_at = 0
        for directory, count, span in zip(directories, counts, spans, strict=True):
            self._where[directory] = (name_at, name_at + span, key_at, count)
            name_at += span
            key_at += count
        self._names, self._keys = names, keys
        self._decoded: dict[str, dict[str, bytes]] = {}
        self.files = key_at

    def __getitem__(self, directory: str) -> Mapping[str, bytes]:
        entries = self._decoded.get(directory)
        if entries is None:
            start, end, first, count = self._where[directory]
            names = self._names[start:end].decode("utf-8", "surrogateescape").split("\0")
            keys = self._keys
            entries = self._decoded[directory] = dict(zip(names, [
                keys[index * _KEY_SIZE:(index + 1) * _KEY_SIZE] for index in range(first, first + count)],
                strict=True))
        return entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)


def count(known: Known) -> int:
    """How many files the set holds (without decoding a saved one)."""
    return known.files if isinstance(known, Saved) else sum(map(len, known.values()))


def decode(blob: bytes) -> Saved | None:
    """The set from encode()'s bytes; None when they are not what encode() writes."""
    start = len(_MAGIC) + _LENGTHS.size
    if not blob.startswith(_MAGIC) or len(blob) < start:
        return None
    lengths = _LENGTHS.unpack_from(blob, len(_MAGIC))
    if start + sum(lengths) != len(blob):
        return None
    sections = []
    for length in lengths:
        sections.append(blob[start:start + length])
        start += length
    directories = sections[0].decode("utf-8", "surrogateescape").split("\0") if sections[0] else []
    counts, spans = array("I"), array("I")
    if len(sections[1]) % counts.itemsize or len(sections[2]) % spans.itemsize:
        return None
    counts.frombytes(sections[1])
    spans.frombytes(sections[2])
    names, keys = sections[3], sections[4]
    if len(directories) != len(counts) or len(counts) != len(spans) or sum(spans) != len(names) \
            or len(keys) != _KEY_SIZE * sum(counts) or 0 in counts:
        return None
    return Saved(directories, counts, spans, names, keys)
