"""Transcript outputs: what a finished job leaves beside its source file.

`render` (pure: result -> txt/srt/vtt/json/md text) with `subtitles` (cue timing and line breaking),
`naming` (which directory and names a source's outputs get), `write` (ownership of output paths: what may
be replaced), `atomic` (atomic writes, careful removal, durable directories), `move` (moving a finished
source away), `publish` (render then write), `claim` (one lock per output folder), `hooks` (commands run
after a file is done).
"""
