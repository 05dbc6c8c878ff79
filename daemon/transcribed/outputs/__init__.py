"""Transcript outputs: what a finished job leaves beside its source file.

`render` (pure: result -> txt/srt/vtt/json/md text) with `subtitles` (cue timing and line breaking),
`write` (naming, ownership of output paths, atomic writes), `publish` (render then write), `hooks`
(commands run after a file is done).
"""
