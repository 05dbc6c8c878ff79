"""Media preparation in the pipeline: probe, then send the file as it is, its extracted audio, or parts.

A file with an extension other files use too (inbox/filters.AMBIGUOUS_EXTENSIONS: `.ts` is also TypeScript)
is first confirmed to be media by its content; when it is not, it is set aside (NotMediaError) before a
byte is sent. A file whose extension Gladia does not list (API.md §8) has its audio extracted.

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
from transcribed.errors import MediaError, NotMediaError
from transcribed.inbox.filters import AMBIGUOUS_EXTENSIONS, GLADIA_EXTENSIONS, VIDEO_EXTENSIONS

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
        """Probe (when ffprobe is there) and plan. Raise NotMediaError for a file whose extension other files
        use too (AMBIGUOUS_EXTENSIONS) that holds no MPEG transport stream packets at its start (set aside, not
        failed), and MediaError for a file that cannot be sent (a real recording with no audio among them)."""
        extension = source.suffix.lower().lstrip(".")
        other_use = AMBIGUOUS_EXTENSIONS.get(extension)
        if other_use is not None and not holds_transport_stream(source):
            raise NotMediaError(f"not media: no MPEG transport stream in it (.{extension} is also used by "
                                f"{other_use})")
        found = media.probe(source, self.config, self.ffprobe) if self.ffprobe else None
        if found is not None and not found.audio_streams:
            raise MediaError("no audio stream")
        is_video = found.has_video if found else extension in VIDEO_EXTENSIONS
        unlisted = None if extension in GLADIA_EXTENSIONS else source.suffix.lower()
        return media.plan(found, self.config, is_video=is_video, ffmpeg_available=self.ffmpeg is not None,
                          unlisted=unlisted), found


# MPEG transport streams: 188-byte packets starting with the sync byte 0x47; camcorders (.mts, .m2ts) put a
# 4-byte timestamp before each (192 bytes), and some broadcast captures 16 check bytes after each (204).
_SYNC = 0x47
_PACKET_SIZES = (188, 192, 204)
_SYNC_PACKETS = 4      # sync bytes in a row that make a transport stream (ffmpeg's own probe wants more)


def holds_transport_stream(source: Path) -> bool:
    """True when the first packets of `source` are those of an MPEG transport stream (a cheap look at its
    first kilobyte, before ffprobe is asked). A text file such as a TypeScript source would need a "G" at
    four places exactly one packet apart; ffprobe has the last word anyway. An unreadable file counts as
    one, so that the probe or the upload reports the real error."""
    try:
        with open(source, "rb") as handle:
            head = handle.read(max(_PACKET_SIZES) * (_SYNC_PACKETS + 1))
    except OSError:
        return True
    for size in _PACKET_SIZES:
        for start in range(min(size, len(head))):
            if all(start + index * size < len(head) and head[start + index * size] == _SYNC
                   for index in range(_SYNC_PACKETS)):
                return True
    return False


def part_key(key: str, index: int, count: int) -> str:
    return f"{key}{PART_MARK}{index + 1}of{count}"


def is_part(key: str) -> bool:
    return PART_MARK in key
