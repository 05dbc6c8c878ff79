"""Per-folder settings: a `.transcribed.toml` in any folder under an inbox overrides, for the files below that
folder, keys of the main config's [transcription], [output] and [skip] tables (the sections registered in
FOLDER_SECTIONS); the nearest folder wins key by key (a deeper file over a shallower one over the main config).

A folder file is validated like the main config: every problem at once, each with the file and the dotted
key; unknown keys are errors. Files below a folder whose settings are invalid must wait (`Effective.problems`
is not empty): they are never processed with settings the user did not mean. Parsed files are cached per
folder by (mtime_ns, size, inode), so a big inbox costs one stat per folder level per file, not a parse.
"""

from __future__ import annotations

import hashlib
import json
import threading
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from transcribed import config as settings
from transcribed.config import Config

FILE_NAME = ".transcribed.toml"
_Identity = tuple[int, int, int]


@dataclass(frozen=True)
class FolderSection:
    """How one per-folder table is read, combined across folders and laid over the main config."""

    parse: Callable[[object, list[str]], dict[str, Any]]      # table -> overrides; problems appended
    apply: Callable[[Config, Mapping[str, Any]], Config]      # the main config with the merged overrides
    combine: Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]] = \
        lambda shallow, deep: {**shallow, **deep}
    check: Callable[[Config], list[str]] = lambda _: []      # problems of the merged result
    keys: Callable[[Mapping[str, Any]], list[str]] = lambda overrides: sorted(overrides)   # for provenance


def _flatten(values: Mapping[str, Any]) -> list[str]:
    """Request keys one level down ("language_config.languages"), as `merge_request` merges them."""
    out = []
    for name, value in values.items():
        if isinstance(value, Mapping) and value:
            out += [f"{name}.{inner}" for inner in value]
        else:
            out.append(name)
    return sorted(out)


def _apply_transcription(config: Config, overrides: Mapping[str, Any]) -> Config:
    request = settings.merge_request(config.transcription.request, overrides)
    return replace(config, transcription=settings.TranscriptionConfig(request))


def _parse_output(table: object, problems: list[str]) -> dict[str, Any]:
    return settings.section_overrides("output", table, settings.parse_output, problems,
                                      settings.FOLDER_OUTPUT_KEYS)


def _parse_skip(table: object, problems: list[str]) -> dict[str, Any]:
    if not isinstance(table, dict):
        problems.append(f"skip: expected a table ([skip]), got {type(table).__name__}")
        return {}
    parsed = settings.parse_skip(table, problems)
    return {name: getattr(parsed, name) for name in table if name in ("subtitle_languages",)}


# Per-folder sections -> how they are read and applied. A new section plugs in here.
FOLDER_SECTIONS: dict[str, FolderSection] = {
    "transcription": FolderSection(
        parse=settings.transcription_overrides,
        apply=_apply_transcription,
        combine=settings.merge_request,
        check=lambda merged: settings.check_combinations(merged.transcription.request),
        keys=_flatten,
    ),
    "output": FolderSection(
        parse=_parse_output,
        apply=lambda config, overrides: replace(config, output=settings.merge_section(config.output, overrides)),
    ),
    "skip": FolderSection(
        parse=_parse_skip,
        apply=lambda config, overrides: replace(config, skip=settings.merge_section(config.skip, overrides)),
    ),
}


@dataclass(frozen=True)
class FolderFile:
    """One parsed `.transcribed.toml`: its overrides per section, or its problems."""

    path: Path
    overrides: Mapping[str, Mapping[str, Any]]
    problems: tuple[str, ...]


@dataclass(frozen=True)
class Effective:
    """The settings for one file: the main config with its folders' overrides laid over it."""

    config: Config
    sources: Mapping[str, str]                     # "section.key" -> the .transcribed.toml that set it
    files: tuple[Path, ...] = ()                   # the folder files that apply, shallowest first
    problems: tuple[str, ...] = ()                 # not empty: the file must wait until they are fixed
    request_tag: str = ""                          # "" when the request is the main config's, else its digest

    @property
    def valid(self) -> bool:
        return not self.problems

    def content_key(self, base: str) -> str:
        """The ledger key of content `base` (a fingerprint or a link key) sent with these settings: the same
        bytes asked with another request are other content (another job); with the same request, the same."""
        return f"{base}+{self.request_tag}" if self.request_tag else base

    def describe(self) -> list[str]:
        """One line per effective key of each per-folder section, with where it came from."""
        main = str(self.config.source) if self.config.source else "defaults"
        lines = []
        for name in FOLDER_SECTIONS:
            values = _section_values(self.config, name)
            if not values:
                lines.append(f"{name}: nothing set (Gladia's defaults)")
            for key, value in values.items():
                where = self.sources.get(f"{name}.{key}")
                lines.append(f"{name}.{key} = {_show(value)}  ({where or 'main config: ' + main})")
        return lines


def _section_values(config: Config, name: str) -> dict[str, Any]:
    section = getattr(config, name)
    if name == "transcription":
        flat: dict[str, Any] = {}
        for key, value in section.request.items():
            if isinstance(value, Mapping) and value:
                flat.update({f"{key}.{inner}": item for inner, item in value.items()})
            else:
                flat[key] = value
        return dict(sorted(flat.items()))
    return {f.name: getattr(section, f.name) for f in fields(section)}


def _show(value: Any) -> str:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        value = list(value)
    try:
        return json.dumps(value, ensure_ascii=False)
    except TypeError:
        return repr(value)


def request_tag(request: Mapping[str, Any]) -> str:
    """A short digest of a request's parameters (canonical JSON), for the ledger's content key."""
    text = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_file(path: Path, text: bytes) -> FolderFile:
    """Given the bytes of a `.transcribed.toml`, return its overrides, or every problem (prefixed by the file)."""
    problems: list[str] = []
    overrides: dict[str, dict[str, Any]] = {}
    try:
        table = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        return FolderFile(path, {}, (f"{path}: not valid TOML: {exc}",))
    for name in sorted(set(table) - set(FOLDER_SECTIONS)):
        problems.append(f"{name}: unknown section (a folder's {FILE_NAME} may hold: "
                        f"{', '.join(sorted(FOLDER_SECTIONS))})")
    for name, section in FOLDER_SECTIONS.items():
        if name in table:
            overrides[name] = section.parse(table[name], problems)
    return FolderFile(path, overrides, tuple(f"{path}: {problem}" for problem in problems))


class FolderSettings:
    """Resolves the effective settings of files under the inboxes. Thread-safe; parsed files are cached."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._cache: dict[Path, tuple[_Identity, FolderFile]] = {}
        self._merged: dict[tuple[int, ...], tuple[tuple[FolderFile, ...], Effective]] = {}

    def reconfigure(self, config: Config) -> None:
        """A reloaded main config: effective settings are recomputed from it (folder files stay cached)."""
        with self._lock:
            self.config = config
            self._merged.clear()

    def folder_files(self, source: Path) -> list[FolderFile]:
        """The parsed `.transcribed.toml` files from the source's inbox root down to its folder."""
        root = _inbox_root(self.config, source)
        if root is None:
            return []
        found = []
        folder = root
        for part in (*source.parent.relative_to(root).parts, None):
            loaded = self._load(folder / FILE_NAME)
            if loaded is not None:
                found.append(loaded)
            if part is not None:
                folder = folder / part
        return found

    def for_path(self, source: Path) -> Effective:
        """The effective settings of the file at `source` (which need not exist)."""
        base = self.config
        files = tuple(self.folder_files(source))
        if not files:
            return Effective(base, {})
        ids = tuple(id(loaded) for loaded in files)
        with self._lock:
            known = self._merged.get(ids)
        if known is not None and all(a is b for a, b in zip(known[0], files, strict=True)):
            return known[1]     # the same folder files (by identity) over the same main config
        effective = self._merge(base, files)
        with self._lock:
            if len(self._merged) > 10_000:
                self._merged.clear()
            self._merged[ids] = (files, effective)
        return effective

    @staticmethod
    def _merge(base: Config, files: tuple[FolderFile, ...]) -> Effective:
        problems = [problem for loaded in files for problem in loaded.problems]
        combined: dict[str, dict[str, Any]] = {}
        sources: dict[str, str] = {}
        for loaded in files:
            for name, overrides in loaded.overrides.items():
                section = FOLDER_SECTIONS[name]
                combined[name] = section.combine(combined.get(name, {}), overrides)
                sources.update({f"{name}.{key}": str(loaded.path) for key in section.keys(overrides)})
        merged = base
        for name, overrides in combined.items():
            merged = FOLDER_SECTIONS[name].apply(merged, overrides)
        if not problems:
            deepest = files[-1].path
            for name in combined:
                problems += [f"{deepest}: {problem} (with the settings it inherits)"
                             for problem in FOLDER_SECTIONS[name].check(merged)]
        request = merged.transcription.request
        tag = "" if request == base.transcription.request else request_tag(request)
        return Effective(merged, sources, tuple(loaded.path for loaded in files), tuple(problems), tag)

    def _load(self, path: Path) -> FolderFile | None:
        try:
            status = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            with self._lock:
                self._cache.pop(path, None)
            return None
        except OSError as exc:
            return FolderFile(path, {}, (f"{path}: cannot be read: {exc.strerror or exc}",))
        identity = (status.st_mtime_ns, status.st_size, status.st_ino)
        with self._lock:
            cached = self._cache.get(path)
        if cached is not None and cached[0] == identity:
            return cached[1]
        try:
            with open(path, "rb") as handle:
                text = handle.read(1024 * 1024)
        except OSError as exc:
            return FolderFile(path, {}, (f"{path}: cannot be read: {exc.strerror or exc}",))
        loaded = parse_file(path, text)
        with self._lock:
            self._cache[path] = (identity, loaded)
        return loaded


def _inbox_root(config: Config, source: Path) -> Path | None:
    best: Path | None = None
    for root in config.inbox.paths:
        if source.is_relative_to(root) and (best is None or len(root.parts) > len(best.parts)):
            best = root
    return best


__all__ = ["FILE_NAME", "FOLDER_SECTIONS", "Effective", "FolderFile", "FolderSection", "FolderSettings",
           "parse_file", "request_tag"]

