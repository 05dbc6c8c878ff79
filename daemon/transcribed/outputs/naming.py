"""Naming outputs: which directory and which file names a source's rendered files get.

Names come from `output.name` ({stem}, {lang}, {format}) in the source's output directory (beside it, or
its folder mirrored under `output.directory`). A source whose plain-stem names another source's outputs
already hold uses its full file name as the stem (talk.mp3 and talk.wav give talk.srt and talk.wav.srt),
and keeps doing so once it has written under it. Nothing here writes: lstat only (`choose_outputs`).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from transcribed.config import OutputConfig
from transcribed.outputs.render import Rendered

__all__ = ["PlannedOutput", "choose_outputs", "output_directory", "plan_outputs"]

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


def choose_outputs(
    source: Path,
    inbox_root: Path,
    rendered: Sequence[Rendered],
    config: OutputConfig,
    *,
    ours: Mapping[Path, str],
    owner_of: Callable[[Path], str | None],
) -> tuple[list[PlannedOutput], list[tuple[Path, str]]]:
    """Plan the names `source` gets (see plan_outputs): its plain stem, or its full file name as the stem
    when this source already wrote under that one (`ours`: its paths), or when another source's outputs
    (`owner_of` a path is not None) hold one of the plain-stem paths. Return (planned, skipped)."""
    primary, primary_skipped = plan_outputs(source, inbox_root, rendered, config)
    if source.name != source.stem:
        alternate, alternate_skipped = plan_outputs(source, inbox_root, rendered, config, stem=source.name)
        if _use_alternate(primary, alternate, ours, owner_of):
            return alternate, alternate_skipped
    return primary, primary_skipped


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
