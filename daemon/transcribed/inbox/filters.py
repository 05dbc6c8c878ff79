"""Which names count as media: pure functions on names, no I/O.

A file counts when its extension is a media one (MEDIA_EXTENSIONS, case-insensitive: the containers Gladia
lists in API.md §8 and the other common ones ffmpeg reads, whose audio is extracted), it is a link file
(.url, .webloc: inbox/links.py), or it matches an `inbox.include` glob, and it is none of: hidden, a
temporary or partial download, OS/NAS litter, one of the daemon's own outputs or temp files, or an
`inbox.exclude` match. The always-ignored rules win over `include`, and `exclude` wins over everything that
would accept a name.

Globs are matched case-insensitively against the name; a glob that contains "/" is matched against the
path relative to the inbox root instead (e.g. "archive/*"). A directory is pruned (with everything below
it) when it is hidden, OS/NAS litter, or matches an exclude glob; a directory holding IGNORE_MARKER is
pruned by the walker, which is the part that can look inside directories.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

IGNORE_MARKER = ".transcribed-ignore"

# API.md §8: the audio and video containers Gladia lists ("matroska" is the mkv container). A file with
# one of these may be sent as it is (pipeline/prepare.py and media.plan decide).
GLADIA_AUDIO_EXTENSIONS = frozenset({"aac", "ac3", "eac3", "flac", "m4a", "mp2", "mp3", "ogg", "opus", "wav"})
GLADIA_VIDEO_EXTENSIONS = frozenset({"3g2", "3gp", "avi", "flv", "m4v", "mkv", "mov", "mp4", "wmv"})
GLADIA_EXTENSIONS = GLADIA_AUDIO_EXTENSIONS | GLADIA_VIDEO_EXTENSIONS
# Containers people record and download that Gladia does not list, each one ffmpeg reads (`ffmpeg -demuxers`):
# their audio is extracted before upload. Audio: Apple/GarageBand/Logic (aif, aifc, aiff, caf), phone voice
# memos (amr, awb, 3ga), audiobooks (m4b), Matroska/Ogg/WebM audio (mka, oga, weba), Windows Media (wma),
# Olympus dictation (dss). Video: browser and Meet recordings (webm), Ogg video (ogv), DVR and broadcast
# recordings (ts, wtv), camcorders (mts, m2ts, m2t, mxf, dv), MPEG program streams and DVDs (mpg, mpeg, vob),
# Windows Media (asf), Flash (f4v).
OTHER_AUDIO_EXTENSIONS = frozenset({"3ga", "aif", "aifc", "aiff", "amr", "awb", "caf", "dss", "m4b", "mka", "oga",
                                    "weba", "wma"})
OTHER_VIDEO_EXTENSIONS = frozenset({"asf", "dv", "f4v", "m2t", "m2ts", "mpeg", "mpg", "mts", "mxf", "ogv", "ts",
                                    "vob", "webm", "wtv"})
AUDIO_EXTENSIONS = GLADIA_AUDIO_EXTENSIONS | OTHER_AUDIO_EXTENSIONS
VIDEO_EXTENSIONS = GLADIA_VIDEO_EXTENSIONS | OTHER_VIDEO_EXTENSIONS
MEDIA_EXTENSIONS = AUDIO_EXTENSIONS | VIDEO_EXTENSIONS
# Media extensions that other kinds of files use too, with what those are: a file with one is confirmed to
# be media by its content (pipeline/prepare.py) before anything is sent, and set aside when it is not.
AMBIGUOUS_EXTENSIONS = {
    "ts": "TypeScript sources and Qt translations",
    "mts": "TypeScript modules",
}
# The reason file_reason gives for a name passed over for its extension alone (the scans count these).
UNSUPPORTED_EXTENSION = "not a supported media extension"
# Link files (inbox/links.py): a recording online, transcribed from its URL. Taken like media.
LINK_EXTENSIONS = frozenset({"url", "webloc"})

# Last extensions that browsers, download managers, sync tools and copy tools give a file while it is
# still being written; the final name appears by rename when it is complete.
TEMPORARY_EXTENSIONS = frozenset({
    "part", "partial", "tmp", "temp", "crdownload", "download", "!qb", "!ut", "!bt", "filepart",
    "opdownload", "aria2", "dlpart", "downloading", "unconfirmed", "swp", "swx", "lck", "lock", "bak",
    "transcribed-tmp",
})
TEMPORARY_PREFIXES = ("~$", "~syncthing~", ".~lock.", ".syncthing.", ".goutputstream-")

# The daemon writes these beside a source (outputs/render.py formats); never treat them as input.
OUTPUT_EXTENSIONS = frozenset({"txt", "srt", "vtt", "json", "md"})
# A name ending so is never media, whatever the globs (outputs are refused before include/exclude apply).
OUTPUT_SUFFIXES = tuple(f".{extension}" for extension in sorted(OUTPUT_EXTENSIONS))
OWN_TEMPORARY_MARK = ".transcribed-tmp"

# Folders and files that operating systems, NAS boxes and sync tools leave behind (casefolded).
LITTER_NAMES = frozenset({
    ".ds_store", "thumbs.db", "ehthumbs.db", "ehthumbs_vista.db", "desktop.ini", "icon\r", ".directory",
    "@eadir", "#recycle", "@recycle", "#snapshot", "@tmp", ".@__thumb", "@sharebin", ".recycle",
    ".stfolder", ".stversions", ".stignore", "__macosx", ".trashes", ".trash", ".spotlight-v100",
    ".fseventsd", ".temporaryitems", ".appledouble", ".apdisk", "lost+found", "$recycle.bin",
    "system volume information", ".sync", ".dropbox.cache", ".dropbox", IGNORE_MARKER,
})


def _compile(globs: tuple[str, ...]) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    """One regex for the name globs and one for the path globs (None when there are none)."""
    names = [fnmatch.translate(glob.casefold()) for glob in globs if "/" not in glob]
    paths = [fnmatch.translate(glob.strip("/").casefold()) for glob in globs if "/" in glob]
    return (
        re.compile("|".join(names), re.DOTALL) if names else None,
        re.compile("|".join(paths), re.DOTALL) if paths else None,
    )


def _matches(patterns: tuple[re.Pattern[str] | None, re.Pattern[str] | None], folded_name: str,
             relative: str | None) -> bool:
    by_name, by_path = patterns
    if by_name is not None and by_name.match(folded_name):
        return True
    return by_path is not None and relative is not None and by_path.match(relative.casefold()) is not None


@dataclass(frozen=True)
class NameFilter:
    """Decides by name alone. Build it once from `inbox.include` / `inbox.exclude`; calls are thread-safe.

    Every method takes a single path component (`name`) and, optionally, the path relative to the inbox
    root with "/" separators (`relative`), needed only when a glob contains "/" (see `uses_paths`).
    Names may hold anything a file name can (newlines, lone surrogates from undecodable bytes); no method
    raises on any str.
    """

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    _include: tuple[re.Pattern[str] | None, re.Pattern[str] | None] = field(init=False, repr=False,
                                                                              compare=False)
    _exclude: tuple[re.Pattern[str] | None, re.Pattern[str] | None] = field(init=False, repr=False,
                                                                              compare=False)

    _plain: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_include", _compile(tuple(self.include)))
        object.__setattr__(self, "_exclude", _compile(tuple(self.exclude)))
        object.__setattr__(self, "_plain", not self.exclude)

    @property
    def uses_paths(self) -> bool:
        """True when some glob contains "/", so callers must pass `relative` for exact answers."""
        return self._include[1] is not None or self._exclude[1] is not None

    def file_reason(self, name: str, relative: str | None = None) -> str | None:
        """Return None when a regular file called `name` counts as media, else a short reason for the log."""
        if not name or name[0] == ".":
            return "hidden"
        # Fast path for rescans of large inboxes: an ordinary media name and no exclude globs. A media
        # extension rules out every temporary, output and litter name; "~" starts take the long way.
        dot = name.rfind(".")
        if dot > 0 and self._plain and name[0] != "~":
            extension = name[dot + 1:].lower()
            if extension in MEDIA_EXTENSIONS:
                return None
            if extension in OUTPUT_EXTENSIONS:   # the transcripts beside each source: as below, sooner
                return "a transcript or temp file, not media"
        folded = name.casefold()
        dot = folded.rfind(".")
        extension = folded[dot + 1:] if dot > 0 else ""
        if extension in TEMPORARY_EXTENSIONS or folded[-1] == "~" or folded.startswith(TEMPORARY_PREFIXES):
            return "temporary or partial name"
        if extension in OUTPUT_EXTENSIONS or (extension not in MEDIA_EXTENSIONS and OWN_TEMPORARY_MARK in folded):
            return "a transcript or temp file, not media"
        if folded in LITTER_NAMES:
            return "operating system or NAS litter"
        if (self._exclude[0] is not None or self._exclude[1] is not None) and _matches(
                self._exclude, folded, relative):
            return "matches inbox.exclude"
        if extension in MEDIA_EXTENSIONS or extension in LINK_EXTENSIONS:
            return None
        if (self._include[0] is not None or self._include[1] is not None) and _matches(
                self._include, folded, relative):
            return None
        return UNSUPPORTED_EXTENSION

    def directory_reason(self, name: str, relative: str | None = None) -> str | None:
        """Return None when the walk may enter a directory called `name`, else why it is skipped."""
        if not name or name[0] == ".":
            return "hidden folder"
        folded = name.casefold()
        if folded in LITTER_NAMES:
            return "operating system or NAS litter"
        if (self._exclude[0] is not None or self._exclude[1] is not None) and _matches(
                self._exclude, folded, relative):
            return "matches inbox.exclude"
        return None

    def accepts_file(self, name: str, relative: str | None = None) -> bool:
        """True when a regular file called `name` counts as media."""
        return self.file_reason(name, relative) is None

    def accepts_directory(self, name: str, relative: str | None = None) -> bool:
        """True when the walk may enter a directory called `name`."""
        return self.directory_reason(name, relative) is None
