"""After a damaged ledger: adopt files whose outputs are already on disk, so nothing is paid for again.

Used by `transcribed run|once --rebuild-ledger`. A media file in an inbox that the ledger does not know, with
outputs of its own beside it (or in its mirrored output folder), is hashed and recorded as done with those
outputs; when its `.json` output holds a whole done Gladia job body, that becomes the stored result too, so
`transcribed render` keeps working.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import structlog

from transcribed.config import OUTPUT_FORMATS, Config
from transcribed.errors import MalformedResultError
from transcribed.fingerprint import fingerprint
from transcribed.gladia.result import parse_job
from transcribed.inbox import ReadyFile
from transcribed.inbox.folders import FolderSettings
from transcribed.inbox.links import LinkError, is_link, link_key, read_link
from transcribed.ledger import Ledger
from transcribed.outputs.naming import output_directory

log = structlog.get_logger("transcribed.adopt")


def existing_outputs(config: Config, source: Path, root: Path) -> list[Path]:
    """The files in the source's output folder named after it (stem or full name) with an output format."""
    directory = output_directory(source, root, config.output.directory)
    prefixes = (source.stem + ".", source.name + ".")
    try:
        names = [entry for entry in directory.iterdir() if entry.name.startswith(prefixes)]
    except OSError:
        return []
    return sorted(p for p in names if p.suffix.lstrip(".") in OUTPUT_FORMATS and p.is_file() and p != source)


def adopt(ledger: Ledger, config: Config, files: Iterable[ReadyFile]) -> int:
    """Record as done every unknown file that has outputs on disk, and give known finished files whose stored
    result was lost their result back from their `.json` output; return how many files were adopted."""
    adopted = 0
    folders = FolderSettings(config)
    for item in files:
        key = ledger.lookup_stat(str(item.path), item.device, item.inode, item.size, item.mtime_ns)
        if key is not None and ledger.load_result(key) is not None:
            continue
        outputs = existing_outputs(config, item.path, item.root)
        if not outputs:
            continue
        known = key is not None
        if key is None:
            key = _content_key(item.path, folders)
            if key is None:
                continue
        if not known:
            ledger.record_seen(key, str(item.path), str(item.root), item.device, item.inode, item.size,
                               item.mtime_ns)
        _restore_result(ledger, key, outputs)
        entry = ledger.get(key)
        if entry is not None and entry.state != "done":
            digests = {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in outputs}
            ledger.adopt_done(key, str(item.path), digests, root=str(item.root), device=item.device,
                              inode=item.inode, size=item.size, mtime_ns=item.mtime_ns)
            log.info("file_adopted", file=str(item.path), outputs=len(outputs))
            adopted += 1
    return adopted


def _content_key(path: Path, folders: FolderSettings) -> str | None:
    """The key the pipeline would give this file (pool.identify): its bytes' or its link's, plus the request
    digest of its folder settings; None for a link file that cannot be read or folder settings that are
    invalid (the pipeline decides those when it meets them)."""
    effective = folders.for_path(path)
    if not effective.valid:
        return None
    if is_link(path):
        try:
            key = link_key(read_link(path))
        except LinkError:
            return None
    else:
        key = fingerprint(path)
    return effective.content_key(key)


def _restore_result(ledger: Ledger, key: str, outputs: list[Path]) -> None:
    for output in outputs:
        if output.suffix != ".json":
            continue
        try:
            body = json.loads(output.read_text(encoding="utf-8"))
            if parse_job(body).status == "done":
                ledger.store_result(key, body)
                return
        except (ValueError, OSError, MalformedResultError):
            continue
