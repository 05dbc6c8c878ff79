"""Where a webhook may point: a mapped path, resolved (symbolic links and `..`), inside an allowed folder.

`confine(mapped, roots)` decides, touching nothing for a path already outside by its name: a path that is
not absolute or lies outside every root is refused (403) before any stat; then it is resolved, and a path
that does not exist or is not a regular file is refused (404), one that resolves outside every root (a
symbolic link out) is refused (403). An accepted path is returned as the caller named it (normalised; a
symbolic link inside the allowed folders stays the link, so outputs go beside the name media servers show),
with the configured root it lies in.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Confined", "confine"]


@dataclass(frozen=True)
class Confined:
    """The verdict on one path: `path` and `root` when accepted (status 200), else `status` (403 or 404)
    and `reason`, one line for the log and the answer."""

    status: int
    reason: str
    path: Path | None = None
    root: Path | None = None


def _deepest(path: str, roots: Sequence[tuple[Path, str]]) -> tuple[Path, str] | None:
    found = [(root, text) for root, text in roots if path == text or path.startswith(text.rstrip("/") + "/")]
    return max(found, key=lambda pair: len(pair[1]), default=None)


def confine(mapped: str, roots: Sequence[Path]) -> Confined:
    """Decide on `mapped` (a path as this host sees it) against `roots` (inbox.paths and library_paths)."""
    if not mapped.startswith("/") or "\x00" in mapped:
        return Confined(403, "not an absolute path")
    named = posixpath.normpath(mapped)
    configured = [(root, str(root)) for root in roots]
    if _deepest(named, configured) is None:
        return Confined(403, "outside inbox.paths and integrations.library_paths")
    try:
        real = os.path.realpath(named, strict=True)
        status = Path(real).stat()
    except (FileNotFoundError, NotADirectoryError):
        return Confined(404, "no such file")
    except OSError as exc:
        return Confined(404, f"cannot be read: {exc.strerror or exc.__class__.__name__}")
    resolved = []
    for root in roots:
        try:
            resolved.append((root, os.path.realpath(root, strict=True)))
        except OSError:
            continue
    inside = _deepest(real, resolved)
    if inside is None:
        return Confined(403, "resolves (through a symbolic link) outside inbox.paths and integrations.library_paths")
    if not stat.S_ISREG(status.st_mode):
        return Confined(404, "not a regular file")
    # Accepted under the name the caller gave (a symbolic link stays one): that is the name media servers
    # show, so the transcripts go beside it.
    root, _ = _deepest(named, configured) or inside
    return Confined(200, "accepted", Path(named), root)
