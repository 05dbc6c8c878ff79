"""Outputs of a finished content: render its result for each of its paths still in an inbox, with each
path's own [output] settings (its folder's .transcribed.toml over the main config), write them atomically,
record them, and mark the content done. Used by the pipeline and by `transcribed render`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog

from transcribed.config import Config
from transcribed.gladia.result import JobView, parse_job
from transcribed.inbox.folders import FolderSettings
from transcribed.ledger import Ledger
from transcribed.outputs.publish import publish
from transcribed.pipeline.settled import inbox_root

log = structlog.get_logger("transcribed.outputs")


def publish_outputs(ledger: Ledger, config: Config, key: str, paths: Sequence[str] | None = None, *,
                    crash: Callable[[str], None] | None = None, view: JobView | None = None,
                    folders: FolderSettings | None = None) -> list[str] | None:
    """Render the result of `key` (`view`, else the stored one) for each of its paths (or `paths`) still in an
    inbox, write the outputs atomically, record them and mark the content done; return the output paths
    written, or None when the ledger holds no result for it.

    With `folders`, each path gets the [output] settings of its own folder; a path whose folder settings are
    invalid gets no outputs now (logged: `transcribed render` writes them once they are fixed)."""
    entry = ledger.get(key)
    if entry is None:
        return None
    if view is None:
        body = ledger.load_result(key)
        if body is None:
            return None
        view = parse_job(body)
    outputs = dict(entry.outputs)
    written: list[str] = []
    for text in paths if paths is not None else entry.paths:
        source = Path(text)
        root = inbox_root(config, source)
        if root is None or not source.exists():
            continue
        output = config.output
        if folders is not None:
            effective = folders.for_path(source)
            if not effective.valid:
                log.warning("outputs_held", source=str(source), problems=list(effective.problems),
                            action="fix the folder's .transcribed.toml, then `transcribed render`")
                continue
            output = effective.config.output
        ours = {Path(p): digest for p, digest in outputs.items()}
        report = publish(view, source, root, output, ours=ours,
                         owner_of=functools.partial(_other_owner, ledger, key=key))
        for path, reason in report.conflicts:
            ledger.note_conflict(key, str(path), reason)
            log.warning("output_conflict", output=str(path), reason=reason)
        for path, digest in report.written.items():
            outputs[str(path)] = digest
            written.append(str(path))
        log.info("transcript_written", source=str(source), outputs=sorted(str(p) for p in report.written))
    if crash is not None:
        crash("after_outputs")
    ledger.mark_done(key, outputs)
    return written


def _other_owner(ledger: Ledger, path: Path, *, key: str) -> str | None:
    owner = ledger.output_owner(str(path))
    return owner if owner != key else None
