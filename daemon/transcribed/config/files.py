"""The sections about files: [inbox] (where media arrives), [output] (what is written, where), [media]
(ffprobe / ffmpeg: extraction, splitting) and [skip] (what is not sent to Gladia).
"""

from __future__ import annotations

import string

from transcribed.config.model import MEDIA_CODECS, OUTPUT_FORMATS, InboxConfig, MediaConfig, OutputConfig, SkipConfig
from transcribed.config.sections import MISSING, Section
from transcribed.languages import canonical


def parse_inbox(s: Section) -> InboxConfig:
    config = InboxConfig(
        paths=s.paths("paths", InboxConfig.paths),
        recursive=s.boolean("recursive", True),
        settle_seconds=s.number("settle_seconds", 5.0),
        settle_timeout_seconds=s.number("settle_timeout_seconds", 86400.0, above=True),
        rescan_seconds=s.number("rescan_seconds", 600.0, above=True),
        observer=s.string("observer", "auto", ("auto", "native", "polling")),  # type: ignore[arg-type]
        polling_interval_seconds=s.number("polling_interval_seconds", 5.0, above=True),
        include=s.strings("include", ()),
        exclude=s.strings("exclude", ()),
    )
    s.finish()
    return config


# The [output] keys a folder's .transcribed.toml may set; the others name places outside the inboxes.
FOLDER_OUTPUT_KEYS = ("formats", "name", "language_fallback", "overwrite", "mode")


def parse_output(s: Section) -> OutputConfig:
    """The [output] section parser (also used for per-folder tables, see `section_overrides`)."""
    return _parse_output(s, s.problems)


def _parse_output(s: Section, problems: list[str]) -> OutputConfig:
    formats = s.strings("formats", OutputConfig.formats, nonempty=True)
    for name in formats:
        if name not in OUTPUT_FORMATS:
            problems.append(f"output.formats: unknown format {name!r} (expected some of: {', '.join(OUTPUT_FORMATS)})")
    name = s.string("name", OutputConfig.name)
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(name) if f is not None}
    except ValueError:
        fields = {"(unbalanced braces)"}
    if not {"stem", "format"} <= fields or fields - {"stem", "lang", "format"} or "/" in name:
        problems.append(f"output.name: expected a file name template with {{stem}} and {{format}} (and optionally "
                        f"{{lang}}), no '/', got {name!r}")
    config = OutputConfig(
        formats=tuple(dict.fromkeys(formats)),
        name=name,
        directory=s.path("directory", None),
        language_fallback=s.string("language_fallback", "und"),
        overwrite=s.boolean("overwrite", False),
        mode=s.mode("mode"),
        after=s.string("after", "keep", ("keep", "move")),  # type: ignore[arg-type]
        done_directory=s.path("done_directory", None),
    )
    if config.after == "move" and config.done_directory is None:
        problems.append('output.done_directory: required when output.after = "move"')
    s.finish()
    return config


def parse_media(s: Section) -> MediaConfig:
    config = MediaConfig(
        extract_audio=s.string("extract_audio", "auto", ("auto", "always", "never")),  # type: ignore[arg-type]
        extract_threshold_mb=s.number("extract_threshold_mb", 100.0),
        audio_stream=_audio_stream(s),
        max_duration_minutes=s.number("max_duration_minutes", 135.0, minimum=1.0, maximum=24 * 60.0),
        max_upload_mb=s.number("max_upload_mb", 1000.0, minimum=1.0),
        codec=s.string("codec", "opus", MEDIA_CODECS),
        bitrate_kbps=s.integer("bitrate_kbps", 32, minimum=6, maximum=256),
        ffmpeg=_tool(s, "ffmpeg"),
        ffprobe=_tool(s, "ffprobe"),
        temp_directory=s.path("temp_directory", None),
        probe_timeout_seconds=s.number("probe_timeout_seconds", 60.0, above=True),
    )
    s.finish()
    return config


def _audio_stream(s: Section) -> int | str:
    """A stream number, a language code ("en", "fra", "pt-BR"), or "" for the file's default stream."""
    value = s.raw("audio_stream")
    if value is MISSING or value == "":
        return ""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10_000:
        return value
    if isinstance(value, str):
        parts = value.replace("_", "-").split("-")
        if 2 <= len(parts[0]) <= 3 and parts[0].isascii() and parts[0].isalpha() \
                and all(p and p.isascii() and p.isalnum() for p in parts[1:]):
            return value
    s.bad("audio_stream", 'a stream number (0, 1, ...), a language code such as "en" or "fra", or ""', value)
    return ""


def _tool(s: Section, name: str) -> str:
    """A command looked up on PATH, or a path (relative ones taken from the config file's folder)."""
    value = s.string(name, name)
    if not value.strip():
        s.bad(name, "a command name or a path", value)
        return name
    return str(s.resolve(value)) if "/" in value else value


def parse_skip(table: object, problems: list[str], *, where: str = "skip",
               base: SkipConfig = SkipConfig()) -> SkipConfig:  # noqa: B008 - a frozen dataclass
    """Given a [skip] table, return the SkipConfig it sets, keys it leaves out taken from `base` (so a
    per-folder file can override some keys of the main config); append a problem per bad value, each
    prefixed with `where` (e.g. "skip" or "/srv/tv/.transcribed.toml: skip")."""
    s = Section(table, where, problems, None)
    languages = base.subtitle_languages
    value = s.raw("subtitle_languages")
    if value is not MISSING:
        codes = [canonical(v) if isinstance(v, str) else None for v in value] if isinstance(value, list) else [None]
        if None in codes:
            s.bad("subtitle_languages", 'a list of language codes such as "en", "eng" or "fra" (ISO 639) or '
                                         'English names such as "English"', value)
        else:
            languages = tuple(dict.fromkeys(code for code in codes if code is not None))
    s.finish()
    return SkipConfig(subtitle_languages=languages)
