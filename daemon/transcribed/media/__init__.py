"""Media preparation before upload, with ffprobe and ffmpeg: what is sent to Gladia for a file.

`probe` reads a file's streams and duration; `convert` decides the plan (send as is, extract the audio, or
split into parts) and extracts; `split` finds quiet cut points; `stitch` joins the parts' results into one;
`workspace` holds extracts in private temporary folders and sweeps what a crash left. Every decision is a
pure function tested by tables; every tool run goes through `probe.run_tool` (argv lists, never a shell).

Exposes the names below, so callers write `media.plan(...)`, `media.extract(...)`.
"""

from transcribed.media.convert import (
    CODECS,
    Codec,
    Plan,
    choose_stream,
    extract,
    extract_command,
    plan,
    upload_name,
)
from transcribed.media.probe import AudioStream, Probe, Stopped, find_tools, probe
from transcribed.media.split import Part, part_budget, split_points
from transcribed.media.stitch import stitch
from transcribed.media.workspace import Workspace

__all__ = [
    "CODECS",
    "AudioStream",
    "Codec",
    "Part",
    "Plan",
    "Probe",
    "Stopped",
    "Workspace",
    "choose_stream",
    "extract",
    "extract_command",
    "find_tools",
    "part_budget",
    "plan",
    "probe",
    "split_points",
    "stitch",
    "upload_name",
]
