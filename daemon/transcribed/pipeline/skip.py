"""No paying for subtitles that exist: whether a file already has subtitles in a wanted language.

The decision is pure: `subtitle_reason(media name, subtitle names beside it, embedded streams' language
tags, wanted languages)` returns why the file is not sent, or None. `subtitle_language` reads one name the
way media servers (Plex, Jellyfin, Emby, Kodi) pair it with `Movie.mkv`: `Movie.<language>[.<flag>...].<ext>`
with the language a 2- or 3-letter ISO 639 code ("en", "eng", "pt-BR") or an English name ("English"),
flags `forced`, `sdh`, `cc`, `hi`, `default` in any order, and a subtitle extension (srt, ass, ssa, vtt,
sub, idx). A name without a language (`Movie.srt`, `Movie.forced.srt`) does not count: what it holds is
unknown, and a wrong guess would cost a transcript the user wanted. "hi" is Hindi alone (`Movie.hi.srt`)
and the hearing-impaired flag beside another language (`Movie.en.hi.srt`).

The shell, `subtitles_beside`, lists the file's folder (one directory read, no file opened) and leaves out
the subtitles transcribed wrote itself (the ledger's outputs, of any content), so its own `Film.en.srt`
never stops a re-transcription.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from transcribed.languages import canonical, english_name
from transcribed.ledger import Ledger

__all__ = ["FLAGS", "SUBTITLE_EXTENSIONS", "has_subtitles", "subtitle_language", "subtitle_reason",
           "subtitles_beside"]

SUBTITLE_EXTENSIONS = frozenset({"srt", "ass", "ssa", "vtt", "sub", "idx"})
FLAGS = frozenset({"forced", "sdh", "cc", "hi", "default"})


def subtitle_language(media_name: str, name: str) -> str | None:
    """Given a media file's name ("Movie.mkv") and another name in its folder, return the language code
    (ISO 639-1, as Gladia writes it) of the subtitle that name is for that media, or None when it is not a
    subtitle of it or says no language. Names compare without regard to case."""
    stem = Path(media_name).stem
    if len(name) <= len(stem) + 1 or name[:len(stem)].casefold() != stem.casefold() or name[len(stem)] != ".":
        return None
    words = name[len(stem) + 1:].split(".")
    if len(words) < 2 or words[-1].lower() not in SUBTITLE_EXTENSIONS:
        return None
    middle = words[:-1]
    if any(word.lower() not in FLAGS and canonical(word) is None for word in middle):
        return None                      # a word that is neither: another video's subtitle ("Movie.Part2.en")
    # Words that can only be a language decide ("en.hi": "hi" is the flag); failing those, a flag that is
    # also a language code is one ("Movie.hi.srt": Hindi).
    languages = {canonical(word) for word in middle if word.lower() not in FLAGS} or \
        {canonical(word) for word in middle}
    languages.discard(None)
    return languages.pop() if len(languages) == 1 else None


def subtitle_reason(media_name: str, neighbours: Iterable[str], embedded: Iterable[str | None],
                    wanted: Sequence[str]) -> str | None:
    """Given a media file's name, the names of subtitle files beside it (transcribed's own left out), its
    embedded subtitle streams' language tags (ffprobe's, "eng"; None for untagged) and the wanted languages
    (ISO 639 codes), return why it is not sent ("has English subtitles: Film.en.srt", "has an embedded
    English subtitle stream"), or None when it has no subtitle in a wanted language (or nothing is wanted).
    External subtitles are named before embedded ones, the first by name."""
    codes = {canonical(code) or code.lower() for code in wanted}
    if not codes:
        return None
    for name in sorted(neighbours):
        language = subtitle_language(media_name, name)
        if language in codes:
            return f"has {english_name(language)} subtitles: {name}"
    for tag in embedded:
        language = canonical(tag) if tag else None
        if language in codes:
            return f"has an embedded {english_name(language)} subtitle stream"
    return None


def subtitles_beside(source: Path, is_ours: Callable[[Path], bool]) -> list[str]:
    """The names of the subtitle files (with a language) of `source` in its folder, leaving out those for
    which `is_ours(path)` is true (outputs transcribed wrote). One directory read; raise OSError when the
    folder cannot be listed."""
    found: list[str] = []
    prefix = Path(source.name).stem.casefold() + "."
    size = len(prefix)
    with os.scandir(source.parent) as entries:
        for entry in entries:
            # The cheap prefix test first: a folder of thousands of files is listed once per new file.
            if entry.name[:size].casefold() != prefix or subtitle_language(source.name, entry.name) is None \
                    or not entry.is_file():
                continue
            if not is_ours(source.parent / entry.name):
                found.append(entry.name)
    return found


def has_subtitles(ledger: Ledger, source: Path, wanted: Sequence[str]) -> str | None:
    """Why `source` is not sent because of an external subtitle beside it in a `wanted` language (the
    subtitles transcribed wrote, recorded as outputs in `ledger`, left out), or None."""
    def is_ours(path: Path) -> bool:
        return ledger.output_owner(str(path)) is not None

    return subtitle_reason(source.name, subtitles_beside(source, is_ours), (), wanted)
