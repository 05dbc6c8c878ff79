"""Media preparation in the pipeline: probe, then send the file as it is, its extracted audio, or parts.

A file with no audio or that cannot be decoded fails before a byte is uploaded. A file too long or too large
for one job is split at quiet points; each part is its own ledger content (key "<key>#part<i>of<n>", seen at
"<source>#part<i>of<n>") carried through upload -> create -> poll like any file, so parts are resumable and
never paid twice; the parent stitches their results into one job body.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import structlog

from transcribed import media
from transcribed.config import MediaConfig
from transcribed.errors import MediaError

log = structlog.get_logger("transcribed.prepare")
PART_MARK = "#part"


@dataclass(frozen=True)
class MediaTools:
    """The media settings and the tools found at start (None: missing)."""

    config: MediaConfig
    ffmpeg: str | None
    ffprobe: str | None

    @classmethod
    def find(cls, config: MediaConfig) -> MediaTools:
        ffmpeg, ffprobe = media.find_tools(config)
        if ffmpeg is None or ffprobe is None:
            log.warning("ffmpeg_missing", ffmpeg=ffmpeg, ffprobe=ffprobe,
                        consequence="files within Gladia's limits are sent as they are; files that need "
                                    "preparation are set aside with the reason 'needs ffmpeg'")
        removed = media.Workspace.sweep(config)
        if removed:
            log.info("media_leftovers_removed", folders=removed)
        return cls(config, ffmpeg, ffprobe)

    def decide(self, source: Path) -> tuple[media.Plan, media.Probe | None]:
        """Probe (when ffprobe is there) and plan. Raise MediaError for a file that cannot be sent."""
        found = media.probe(source, self.config, self.ffprobe) if self.ffprobe else None
        if found is not None and not found.audio_streams:
            raise MediaError("no audio stream")
        is_video = found.has_video if found else source.suffix.lower() in VIDEO_SUFFIXES
        return media.plan(found, self.config, is_video=is_video, ffmpeg_available=self.ffmpeg is not None), found


VIDEO_SUFFIXES = frozenset({".3g2", ".3gp", ".avi", ".flv", ".m4v", ".mkv", ".mov", ".mp4", ".wmv", ".webm"})


def part_key(key: str, index: int, count: int) -> str:
    return f"{key}{PART_MARK}{index + 1}of{count}"


def is_part(key: str) -> bool:
    return PART_MARK in key
