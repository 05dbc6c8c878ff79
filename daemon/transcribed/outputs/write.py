"""Writing outputs: naming, placement, ownership, atomic writes, and moving a finished source away.

Every file is written to a hidden temporary name in its final directory (the watcher ignores names that
start with "."), fsynced, renamed over the final name with `os.replace`, and the directory is fsynced:
a reader sees the old file or the new one, never half of one, even across a crash or a full disk.

Ownership decides what may be replaced. The caller passes what the ledger knows: `ours` (paths this
source's content wrote, with the sha256 of what was written) and `owner_of` (which content key wrote a
path, None if transcribed never did). A path we wrote that still holds those bytes is replaced; a path
another source's outputs hold makes this source use its full file name as the stem (talk.mp3 and talk.wav
give talk.srt and talk.wav.srt); anything else at an output path (a user's file, an edited transcript,
a symbolic link, a directory) is a conflict: left alone and reported, unless `output.overwrite` allows
replacing files transcribed did not write. A file that already holds exactly the bytes to write is taken
over as written (a retry after a crash between the write and the ledger). A symbolic link is never
followed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import shutil
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from transcribed.config import OutputConfig
from transcribed.outputs.render import Rendered

__all__ = [
    "TEMPORARY_MARKER",
    "OutputWriteError",
    "PlannedOutput",
    "WriteReport",
    "atomic_write",
    "move_source",
    "output_directory",
    "plan_outputs",
    "remove_if_unchanged",
    "write_outputs",
]

TEMPORARY_MARKER = ".transcribed-tmp-"
_NAME_MAX = 255
_LANGUAGE = re.compile(r"[A-Za-z0-9_-]{1,16}")
_PLACEHOLDER = re.compile(r"\{(stem|lang|format)\}")


@dataclass(frozen=True)
class PlannedOutput:
    """Where one rendered file goes. `role` names it for hooks: the format ("srt") for the transcript,
    "<lang>.<format>" ("fr.srt") for a translation, "summary" for the summary."""

    path: Path
    rendered: Rendered
    role: str


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


def output_directory(source: Path, inbox_root: Path, directory: Path | None) -> Path:
    """Beside the source when `directory` is None, else the source's folder mirrored under `directory`
    relative to its inbox root. Raise ValueError when the source is not under `inbox_root`."""
    if directory is None:
        return source.parent
    return directory / source.parent.relative_to(inbox_root)


def plan_outputs(
    source: Path,
    inbox_root: Path,
    rendered: Sequence[Rendered],
    config: OutputConfig,
    *,
    stem: str | None = None,
) -> tuple[list[PlannedOutput], list[tuple[Path, str]]]:
    """Name every rendered file from `config.name` ({stem}, {lang}, {format}) in its output directory.

    {lang} is the detected language (or `config.language_fallback`) for the transcript and summary, the
    target language for a translation; a translation still gets a distinct name when the template has no
    {lang} ("<stem>.<lang>.<format>"); the summary's format is "summary.txt". A language code that is not
    a plain code is replaced by the fallback. Return (planned, skipped): a name used twice, or too long
    for the filesystem, is skipped with a reason. Raise ValueError when the template yields a path
    separator (config should reject such a template).
    """
    directory = output_directory(source, inbox_root, config.directory)
    planned: list[PlannedOutput] = []
    skipped: list[tuple[Path, str]] = []
    used: set[str] = set()
    for item in rendered:
        language = item.language if item.language and _LANGUAGE.fullmatch(item.language) else None
        language = language or config.language_fallback
        name = _name(config.name, stem if stem is not None else source.stem, language, item)
        path = directory / name
        if name in used:
            skipped.append((path, "another output of this source has the same name"))
        elif len(os.fsencode(name)) > _NAME_MAX:
            skipped.append((path, "the name is too long for the filesystem"))
        else:
            used.add(name)
            planned.append(PlannedOutput(path, item, _role(item, language)))
    return planned, skipped


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
    primary, primary_skipped = plan_outputs(source, inbox_root, rendered, config)
    planned, skipped = primary, primary_skipped
    if source.name != source.stem:
        alternate, alternate_skipped = plan_outputs(source, inbox_root, rendered, config, stem=source.name)
        if _use_alternate(primary, alternate, ours, owner_of):
            planned, skipped = alternate, alternate_skipped
    report = WriteReport(conflicts=list(skipped))
    if not planned:
        return report
    try:
        _ensure_directory(planned[0].path.parent)
        _remove_stale_temporaries(planned)
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


def atomic_write(path: Path, data: bytes, *, mode: int | None = None) -> str:
    """Replace `path` with `data` atomically and durably; return the data's sha256 (hex).

    Permissions are `mode` when given, else 0o666 less the umask. Whatever is at `path` (a link too) is
    replaced, never followed: callers decide beforehand whether it may be. On any OSError the temporary
    file is removed before the error propagates.
    """
    directory = path.parent
    temporary = directory / (_temporary_prefix(path.name) + secrets.token_hex(4))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    descriptor = os.open(temporary, flags, 0o666)
    renamed = False
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view) :]
            if mode is not None:
                os.fchmod(descriptor, mode)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        temporary.replace(path)
        renamed = True
    finally:
        if not renamed:
            with contextlib.suppress(OSError):
                temporary.unlink()
    _fsync_directory(directory)
    return hashlib.sha256(data).hexdigest()


def remove_if_unchanged(path: Path, digest: str) -> bool:
    """Remove the regular file `path` when it still holds exactly the bytes whose sha256 is `digest` (what
    transcribed wrote); return True when it is gone (removed now, or already absent). A file edited since, a
    symbolic link or a directory is left alone (False)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return True
    if not stat.S_ISREG(info.st_mode) or _file_digest(path) != digest:
        return False
    try:
        path.unlink()
    except FileNotFoundError:
        return True
    _fsync_directory(path.parent)
    return True


def move_source(source: Path, inbox_root: Path, done_directory: Path) -> Path:
    """Move a finished source to `done_directory`, mirroring its place under `inbox_root`; return where
    it went. Never replaces a file there: a taken name becomes "name (1).ext", "name (2).ext", ...
    Works across filesystems (copy, fsync, then remove). Raise ValueError when the source is not under
    `inbox_root`, OSError when the filesystem refuses.
    """
    target_directory = done_directory / source.relative_to(inbox_root).parent
    _ensure_directory(target_directory)
    try:
        target = _claim(source, target_directory, source.name)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK):
            raise
        target = _copy_across(source, target_directory)
    source.unlink()
    _fsync_directory(target_directory)
    _fsync_directory(source.parent)
    return target


# --- helpers -----------------------------------------------------------------------------------------


def _name(template: str, stem: str, language: str, item: Rendered) -> str:
    if "{format}" not in template:
        template += ".{format}"
    if item.kind == "translation" and "{lang}" not in template:
        template = template.replace("{format}", "{lang}.{format}", 1)
    values = {
        "stem": stem,
        "lang": language,
        "format": "summary.txt" if item.kind == "summary" else item.format,
    }
    # One pass: a stem that itself contains "{lang}" is not expanded again.
    name = _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)
    excess = len(os.fsencode(name)) - _NAME_MAX
    if excess > 0 and len(os.fsencode(stem)) > excess + 12:
        # A source named near the 255-byte limit: shorten the stem (keeping it unique with a short hash of
        # the whole stem) rather than leave the file without outputs.
        digest = hashlib.sha256(os.fsencode(stem)).hexdigest()[:8]
        kept = os.fsencode(stem)[: len(os.fsencode(stem)) - excess - 9]
        values["stem"] = os.fsdecode(kept).rstrip() + "~" + digest
        name = _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)
    if "/" in name or "\0" in name or name in ("", ".", ".."):
        raise ValueError(f"output.name {template!r} gives {name!r}, which is not a file name")
    return name


def _role(item: Rendered, language: str) -> str:
    if item.kind == "summary":
        return "summary"
    if item.kind == "translation":
        return f"{language}.{item.format}"
    return item.format


def _use_alternate(
    primary: Sequence[PlannedOutput],
    alternate: Sequence[PlannedOutput],
    ours: Mapping[Path, str],
    owner_of: Callable[[Path], str | None],
) -> bool:
    """Use the full-name stem when this source already wrote under it, or when another source's outputs
    hold one of the plain-stem paths."""
    if any(item.path in ours for item in alternate) and not any(item.path in ours for item in primary):
        return True
    return any(
        item.path not in ours and os.path.lexists(item.path) and owner_of(item.path) is not None
        for item in primary
    )


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
        current = _file_digest(path) if regular else None
        if current in (recorded, digest):
            return None, current == digest
        if overwrite:
            return None, False
        if is_link:
            return "transcribed wrote this file, and a symbolic link has replaced it (not followed)", False
        return "changed since transcribed wrote it (left as it is)", False
    if owner_of(path) is not None:
        return "transcribed wrote this file for another source", False
    if regular and _file_digest(path) == digest:
        # Exactly these bytes are there already: a write that crashed (or failed later in the set)
        # before the ledger recorded it. Taking the file over loses nothing.
        return None, True
    if overwrite:
        return None, False
    if is_link:
        return "a symbolic link is in the way (not followed)", False
    return "a file transcribed did not write is in the way", False


def _file_digest(path: Path) -> str | None:
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    digest = hashlib.sha256()
    with open(descriptor, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _temporary_prefix(name: str) -> str:
    # Truncated so that the temporary name stays within NAME_MAX whatever the final name's length.
    short = os.fsdecode(os.fsencode(name)[:200])
    return f".{short}{TEMPORARY_MARKER}"


def _remove_stale_temporaries(planned: Sequence[PlannedOutput]) -> None:
    """Remove temporaries a crash left behind for these names (they are hidden, but take space)."""
    prefixes = tuple(_temporary_prefix(item.path.name) for item in planned)
    directory = planned[0].path.parent
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.startswith(prefixes) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    Path(entry.path).unlink()


def _ensure_directory(directory: Path) -> None:
    """Create `directory` and its missing parents, each made durable in its parent (fsync), so that an
    output written inside is reachable after a crash."""
    missing: list[Path] = []
    current = directory
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
        _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    except OSError as exc:
        # Some filesystems (FUSE, network) cannot fsync a directory; the rename is as durable as they get.
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(descriptor)


def _numbered(name: str, number: int) -> str:
    if number == 0:
        return name
    path = Path(name)
    return f"{path.stem} ({number}){path.suffix}" if path.suffix else f"{name} ({number})"


def _claim(existing: Path, directory: Path, name: str) -> Path:
    """Hard-link `existing` under the first free numbered `name` in `directory` (never replacing)."""
    for number in range(1000):
        candidate = directory / _numbered(name, number)
        try:
            os.link(existing, candidate, follow_symlinks=False)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(errno.EEXIST, "no free name for the moved source", str(directory / name))


def _copy_across(source: Path, directory: Path) -> Path:
    temporary = directory / (_temporary_prefix(source.name) + secrets.token_hex(4))
    try:
        with open(source, "rb") as reader, open(temporary, "xb") as writer:
            shutil.copyfileobj(reader, writer, 1 << 20)
            writer.flush()
            os.fsync(writer.fileno())
        shutil.copystat(source, temporary)
        try:
            return _claim(temporary, directory, source.name)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EMLINK):
                raise
            # No hard links on this filesystem: take the first free name, accepting a tiny race.
            for number in range(1000):
                candidate = directory / _numbered(source.name, number)
                if not os.path.lexists(candidate):
                    temporary.replace(candidate)
                    return candidate
            raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
