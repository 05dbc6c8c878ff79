"""Raw PCM (what Bazarr sends: s16le, mono, 16 kHz, no header) encoded like extracts before upload.

`encode_pcm(source, config, ffmpeg, output, stop=...)` writes `output` in media.codec (Opus in Ogg by
default, at media.bitrate_kbps): 256 kb/s of PCM become 32 kb/s, 8x fewer bytes to upload. Written under a
temp name and renamed when complete. Raise MediaError when ffmpeg cannot decode it, Stopped on stop.

Stdlib, errors and config only.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from pathlib import Path

from transcribed.config import MediaConfig
from transcribed.errors import MediaError
from transcribed.media.convert import CODECS, SAMPLE_RATE
from transcribed.media.probe import media_argument, one_line, run_tool

__all__ = ["encode_pcm", "pcm_command"]


def pcm_command(source: Path, config: MediaConfig, ffmpeg: str, output: Path) -> list[str]:
    """The ffmpeg argv that encodes raw s16le 16 kHz mono PCM `source` into `output` (never via a shell)."""
    codec = CODECS[config.codec]
    argv = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "s16le", "-ar", str(SAMPLE_RATE),
            "-ac", "1", "-i", media_argument(source), "-map_metadata", "-1", *codec.arguments]
    if codec.bytes_per_second is None:
        argv += ["-b:a", f"{config.bitrate_kbps}k"]
    return [*argv, "-f", codec.muxer, media_argument(output)]


def encode_pcm(source: Path, config: MediaConfig, ffmpeg: str, output: Path, *,
               stop: threading.Event | None = None) -> Path:
    """Encode `source` into `output` (see the module's docstring); return `output`."""
    handle, temp_name = tempfile.mkstemp(prefix=".encode-", suffix=".tmp", dir=output.parent)
    os.close(handle)
    temp = Path(temp_name)
    try:
        status, _, err = run_tool(pcm_command(source, config, ffmpeg, temp), stop=stop)
        if status != 0:
            raise MediaError(f"cannot encode the PCM: {one_line(err, media_argument(source), fallback=str(status))}")
        temp.replace(output)
        return output
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
