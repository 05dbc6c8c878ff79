"""Write a finished content's outputs for each of its source paths, and record them as that path's.

Outputs belong to the source path they were written for. New content at that path (a file replaced in
place) takes them over at the usual names, provided they still hold exactly what transcribed wrote (an
edited transcript is a conflict, left alone); those the new set does not rewrite are removed, so no stale
transcript of the old recording is left. The alternate name (`talk.wav.txt`) is only for two live sources
that want the same name. A source claims its whole set while holding its output folder's lock (decide
plain or alternate names, write, record in one ledger transaction), so two sources finishing at the same
moment never mix their outputs. With per-folder settings, each path gets its own folder's [output].
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import structlog

from transcribed.config import Config
from transcribed.gladia.result import JobView, parse_job
from transcribed.inbox.folders import FolderSettings
from transcribed.ledger import Ledger
from transcribed.outputs.atomic import remove_if_unchanged
from transcribed.outputs.claim import FolderLocks
from transcribed.outputs.naming import output_directory
from transcribed.outputs.publish import publish
from transcribed.outputs.write import OutputWriteError, WriteReport
from transcribed.pipeline.settled import has_outputs_for, inbox_root

log = structlog.get_logger("transcribed.job")

__all__ = ["publish_outputs"]


def publish_outputs(ledger: Ledger, config: Config, key: str, paths: Sequence[str] | None = None, *,
                    crash: Callable[[str], None] | None = None, view: JobView | None = None,
                    locks: FolderLocks | None = None, folders: FolderSettings | None = None) -> list[str] | None:
    """Render the result of `key` (`view`, else the stored one) for each of its paths (or `paths`) still in an
    inbox, claim and write each path's outputs atomically under its folder's lock (`locks`: shared by every
    worker of a process), record them and mark the content done; return the output paths written, or None
    when the ledger holds no result for it. Raise OSError (OutputWriteError) when the filesystem refuses,
    after recording what was already durable.

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
    locks = locks or FolderLocks()
    outputs = dict(entry.outputs)
    written: list[str] = []
    for text in paths if paths is not None else entry.paths:
        source = Path(text)
        root = inbox_root(config, source)
        if root is None or not source.exists():
            continue
        settings = config
        if folders is not None:
            effective = folders.for_path(source)
            if not effective.valid:
                log.warning("outputs_held", source=text, problems=list(effective.problems),
                            action="fix the folder's .transcribed.toml, then `transcribed render`")
                continue
            settings = effective.config
        with locks.hold(output_directory(source, root, settings.output.directory)):
            report = _claim(ledger, settings, key, view, source, root, outputs)
        for path, reason in report.conflicts:
            ledger.note_conflict(key, str(path), reason)
            log.warning("output_conflict", output=str(path), reason=reason)
        for path, digest in report.written.items():
            outputs[str(path)] = digest
            written.append(str(path))
        log.info("transcript_written", source=text, outputs=sorted(str(p) for p in report.written))
    if crash is not None:
        crash("after_outputs")
    ledger.mark_done(key, outputs)
    return written


def _claim(ledger: Ledger, config: Config, key: str, view: JobView, source: Path, root: Path,
           outputs: Mapping[str, str]) -> WriteReport:
    """With the folder's lock held: decide, write and record the whole output set of `source`."""
    text = str(source)
    # Outputs an earlier content of this very path wrote (named after it): ours to replace if unedited.
    inherited = {Path(path): digest for path, (owner, digest) in ledger.outputs_of_source(text).items()
                 if owner != key and has_outputs_for(config, (path,), text)}
    ours = {Path(path): digest for path, digest in outputs.items()} | inherited
    try:
        report = publish(view, source, root, config.output, ours=ours,
                         owner_of=functools.partial(_other_owner, ledger, key=key, inherited=inherited))
    except OutputWriteError as exc:
        ledger.claim_outputs(key, text, {str(p): d for p, d in exc.report.written.items()})
        raise
    stale = [path for path, digest in inherited.items()
             if path not in report.written and remove_if_unchanged(path, digest)]
    if stale:
        log.info("stale_outputs_removed", source=text, outputs=sorted(str(p) for p in stale))
    ledger.claim_outputs(key, text, {str(p): d for p, d in report.written.items()},
                         released=[str(p) for p in stale])
    return report


def _other_owner(ledger: Ledger, path: Path, *, key: str, inherited: Mapping[Path, str]) -> str | None:
    """The content key of another source whose outputs hold `path`, or None (ours, or our path's own)."""
    if path in inherited:
        return None
    owner = ledger.output_owner(str(path))
    return owner if owner != key else None
