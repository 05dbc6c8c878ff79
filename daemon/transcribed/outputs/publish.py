"""Render a done job and write its outputs for one source: the one call the pipeline and CLI make."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from transcribed.config import OutputConfig
from transcribed.gladia.result import JobView
from transcribed.outputs.render import SubtitleLimits, render
from transcribed.outputs.write import WriteReport, write_outputs

__all__ = ["publish"]


def publish(
    job: JobView,
    source: Path,
    inbox_root: Path,
    config: OutputConfig,
    *,
    ours: Mapping[Path, str],
    owner_of: Callable[[Path], str | None],
    request_params: Mapping[str, Any] | None = None,
) -> WriteReport:
    """Render `job` in `config.formats` and write the files for `source` (see write.write_outputs).

    Subtitle limits come from `request_params` when given, else from the job's own `request_params`
    echo. Return the WriteReport; raise ValueError when the job is not done, OutputWriteError (an
    OSError carrying what was already durable) when the filesystem refuses.
    """
    params = request_params if request_params is not None else job.raw.get("request_params")
    limits = SubtitleLimits.from_request(params if isinstance(params, Mapping) else None)
    rendered = render(job, config.formats, limits)
    return write_outputs(source, inbox_root, rendered, config, ours=ours, owner_of=owner_of)
