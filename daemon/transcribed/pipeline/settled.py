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
from collections.abc import Iterable
from pathlib import Path

from transcribed.config import Config
from transcribed.ledger import Ledger

Known = dict[str, dict[str, bytes]]

_VERSION = struct.Struct("=QQQq")
_KEY_SIZE = _VERSION.size
_MAGIC = b"transcribed-settled-1\0"
_LENGTHS = struct.Struct("=IIII")


def inbox_root(config: Config, source: Path) -> Path | None:
    """The inbox folder a source belongs to (the deepest match), or None when it is outside every inbox."""
    best: Path | None = None
    for root in config.inbox.paths:
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
        from transcribed.outputs.write import output_directory

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
    known: Known = {}
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
    directories: list[str] = []
    names: list[str] = []
    keys: list[bytes] = []
    counts = array("I")
    for directory, entries in known.items():
        directories.append(directory)
        counts.append(len(entries))
        names.extend(entries)
        keys.extend(entries.values())
    texts = ["\0".join(part).encode("utf-8", "surrogateescape") for part in (directories, names)]
    sections = [texts[0], counts.tobytes(), texts[1], b"".join(keys)]
    return _MAGIC + _LENGTHS.pack(*map(len, sections)) + b"".join(sections)


def decode(blob: bytes) -> Known | None:
    """The set from encode()'s bytes; None when they are not what encode() writes."""
    if not blob.startswith(_MAGIC) or len(blob) < len(_MAGIC) + _LENGTHS.size:
        return None
    offset = len(_MAGIC) + _LENGTHS.size
    lengths = _LENGTHS.unpack_from(blob, len(_MAGIC))
    if offset + sum(lengths) != len(blob):
        return None
    sections = []
    for length in lengths:
        sections.append(blob[offset:offset + length])
        offset += length
    directories = sections[0].decode("utf-8", "surrogateescape").split("\0") if sections[0] else []
    counts = array("I")
    if len(sections[1]) % counts.itemsize:
        return None
    counts.frombytes(sections[1])
    names = sections[2].decode("utf-8", "surrogateescape").split("\0") if sections[2] else []
    keys = sections[3]
    if len(directories) != len(counts) or len(names) != sum(counts) or len(keys) != _KEY_SIZE * len(names):
        return None
    known: Known = {}
    start = 0
    for directory, count in zip(directories, counts, strict=True):
        end = start + count
        known[directory] = dict(zip(names[start:end], [keys[i * _KEY_SIZE:(i + 1) * _KEY_SIZE]
                                                       for i in range(start, end)], strict=True))
        start = end
    return known
