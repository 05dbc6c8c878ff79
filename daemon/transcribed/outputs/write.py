"""Writing a source's outputs: ownership decides what may be replaced; every write is atomic.

The caller passes what the ledger knows: `ours` (paths this source's content wrote, with the sha256 of what
was written) and `owner_of` (which content key wrote a path, None if transcribed never did). Names come
from naming.choose_outputs: a path another source's outputs hold makes this source use its full file name
as the stem (talk.mp3 and talk.wav give talk.srt and talk.wav.srt). A path we wrote that still holds those
bytes is replaced; anything else at an output path (a user's file, an edited transcript, a symbolic link,
a directory) is a conflict: left alone and reported, unless `output.overwrite` allows replacing files
transcribed did not write. A file that already holds exactly the bytes to write is taken over as written
(a retry after a crash between the write and the ledger). Files are written by atomic.atomic_write (a
hidden temporary, fsync, rename, fsync of the directory); a symbolic link is never followed.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from transcribed.config import OutputConfig
from transcribed.outputs.atomic import atomic_write, ensure_directory, file_digest, remove_stale_temporaries
from transcribed.outputs.naming import choose_outputs
from transcribed.outputs.render import Rendered

__all__ = ["OutputWriteError", "WriteReport", "write_outputs"]


@dataclass
class WriteReport:
    """What a write did: `written` maps each durable output path to the sha256 of its bytes (record it
    as this source's); `conflicts` lists (path, reason) left alone; `roles` maps written paths to roles."""

    written: dict[Path, str] = field(default_factory=dict)
    conflicts: list[tuple[Path, str]] = field(default_factory=list)
    roles: dict[Path, str] = field(default_factory=dict)


class OutputWriteError(OSError):
    """Writing failed (disk full, read-only, ...). No partial file is visible. `report` holds the outputs
    already durable before the failure, so the caller can record them as its own before retrying."""

    def __init__(self, cause: OSError, report: WriteReport) -> None:
        super().__init__(cause.errno, cause.strerror, cause.filename)
        self.report = report


def write_outputs(
    source: Path,
    inbox_root: Path,
    rendered: Sequence[Rendered],
    config: OutputConfig,
    *,
    ours: Mapping[Path, str],
    owner_of: Callable[[Path], str | None],
) -> WriteReport:
    """Write every rendered file atomically where `config` says, following the ownership rules above.

    Return the report. Raise OutputWriteError (an OSError carrying the report of what was already
    durable) when the filesystem refuses (full, read-only, permissions); no partial file is left visible.
    """
    planned, skipped = choose_outputs(source, inbox_root, rendered, config, ours=ours, owner_of=owner_of)
    report = WriteReport(conflicts=list(skipped))
    if not planned:
        return report
    try:
        ensure_directory(planned[0].path.parent)
        remove_stale_temporaries(planned[0].path.parent, [item.path.name for item in planned])
        for item in planned:
            data = item.rendered.text.encode("utf-8", errors="replace")
            digest = hashlib.sha256(data).hexdigest()
            reason, unchanged = _verdict(item.path, digest, ours, owner_of, overwrite=config.overwrite)
            if reason is not None:
                report.conflicts.append((item.path, reason))
                continue
            if not unchanged:
                atomic_write(item.path, data, mode=config.mode)
            report.written[item.path] = digest
            report.roles[item.path] = item.role
    except OSError as exc:
        raise OutputWriteError(exc, report) from exc
    return report


# --- helpers -----------------------------------------------------------------------------------------


def _verdict(
    path: Path,
    digest: str,
    ours: Mapping[Path, str],
    owner_of: Callable[[Path], str | None],
    *,
    overwrite: bool,
) -> tuple[str | None, bool]:
    """(conflict reason or None, whether the file already holds exactly these bytes)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None, False
    if stat.S_ISDIR(info.st_mode):
        return "a directory is in the way", False
    is_link = stat.S_ISLNK(info.st_mode)
    regular = stat.S_ISREG(info.st_mode)
    recorded = ours.get(path)
    if recorded is not None:
        current = file_digest(path) if regular else None
        if current in (recorded, digest):
            return None, current == digest
        if overwrite:
            return None, False
        if is_link:
            return "transcribed wrote this file, and a symbolic link has replaced it (not followed)", False
        return "changed since transcribed wrote it (left as it is)", False
    if owner_of(path) is not None:
        return "transcribed wrote this file for another source", False
    if regular and file_digest(path) == digest:
        # Exactly these bytes are there already: a write that crashed (or failed later in the set)
        # before the ledger recorded it. Taking the file over loses nothing.
        return None, True
    if overwrite:
        return None, False
    if is_link:
        return "a symbolic link is in the way (not followed)", False
    return "a file transcribed did not write is in the way", False
