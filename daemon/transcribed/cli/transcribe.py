"""`transcribed transcribe FILE|URL ...`: one-off transcriptions, outside the daemon and its ledger.

Upload (or hand a URL straight to the job), create the job once, poll, and write the outputs beside the file
(URLs: in the current folder). Progress on a terminal; one clear line per failed input; exit 1 if any failed.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import structlog

from transcribed import logs
from transcribed.config import Config, GladiaConfig, MediaConfig, Secret
from transcribed.errors import (
    ApiError,
    AuthenticationError,
    ConfigError,
    JobFailedError,
    MediaError,
    TranscribedError,
)

if TYPE_CHECKING:  # imported where used: every command's start-up pays for what cli/main.py imports here
    from transcribed.gladia.client import GladiaClient
    from transcribed.pipeline.prepare import MediaTools

log = structlog.get_logger("transcribed.transcribe")


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add the `transcribe` subcommand."""
    parser = commands.add_parser(
        "transcribe", parents=[common], help="transcribe files or URLs once, outside the daemon",
        description="Transcribe each FILE (uploaded) or URL (given to Gladia as is) and write the outputs beside "
                    "the file (for a URL, in the current folder). Exit 1 if any failed.")
    parser.add_argument("inputs", nargs="+", metavar="FILE|URL")
    parser.add_argument("--emulator", action="store_true",
                        help="use a built-in Gladia emulator instead of the API (emulated transcripts, no key)")
    parser.add_argument("--format", dest="formats", action="append", metavar="FORMAT",
                        help="output format (repeatable; default: output.formats from the config)")
    parser.add_argument("--output-dir", type=Path, help="write outputs here instead of beside each file")
    parser.set_defaults(handler=cmd_transcribe)


def cmd_transcribe(args: argparse.Namespace) -> int:
    from transcribed.cli import shell
    from transcribed.gladia.client import GladiaClient, Stopped
    from transcribed.gladia.retry import RetryPolicy

    loaded = shell.load_config(args)
    if args.formats:
        loaded = replace(loaded, output=replace(loaded.output, formats=tuple(dict.fromkeys(args.formats))))
    if args.output_dir:
        loaded = replace(loaded, output=replace(loaded.output, directory=args.output_dir.absolute()))
    stop = threading.Event()
    shell.install_stop_signals(stop, on_second=lambda: os._exit(shell.EX_TEMPFAIL))
    with _api(loaded, args.emulator) as gladia:
        loaded = replace(loaded, gladia=gladia)
        logs.configure(loaded.log.format, loaded.log.level, stream=sys.stderr,
                       redactor=logs.Redactor([gladia.api_key.reveal()] if gladia.api_key else []))
        assert gladia.api_key is not None
        policy = RetryPolicy(max_attempts=gladia.max_attempts, deadline=gladia.retry_deadline_seconds)
        client = GladiaClient(gladia.base_url, gladia.api_key.reveal(), policy=policy, stop=stop,
                              request_timeout=gladia.request_timeout_seconds,
                              upload_timeout=gladia.upload_timeout_seconds)
        failed = 0
        with client:
            for item in args.inputs:
                if stop.is_set():
                    break
                try:
                    written = transcribe_one(client, item, loaded)
                except Stopped:
                    print(f"{item}: interrupted", file=sys.stderr)
                    return shell.EX_TEMPFAIL
                except AuthenticationError as exc:
                    print(f"{logs.one_line(item)}: Gladia refused the API key ({exc.message}); "
                          "check GLADIA_API_KEY or gladia.api_key_file", file=sys.stderr)
                    return shell.EX_FAILED
                except (TranscribedError, OSError) as exc:
                    failed += 1
                    print(f"{logs.one_line(item)}: failed: {logs.one_line(_reason(exc))}", file=sys.stderr)
                    continue
                for path in written:
                    print(logs.one_line(str(path)))
        return shell.EX_FAILED if failed else shell.EX_OK


def transcribe_one(client: GladiaClient, item: str, loaded: Config) -> list[Path]:
    """Transcribe one file or URL; return the output paths written. Raise on failure."""
    from transcribed.gladia.retry import poll_deadline
    from transcribed.outputs.publish import publish

    request: dict[str, Any] = dict(loaded.transcription.request)
    if _is_url(item):
        request["audio_url"] = item
        name = Path(unquote(urlsplit(item).path)).name or "transcript"
        source = Path.cwd() / name
        root = Path.cwd()
        duration = None
    else:
        source = Path(item).absolute()
        if not source.is_file():
            raise TranscribedError(f"not a regular file: {source}")
        root = source.parent
        with contextlib.ExitStack() as stack:
            path, name = _prepared(source, loaded, stack)
            progress = _progress(path) if sys.stderr.isatty() else None
            upload = client.upload(path, filename=name, progress=progress)
        if progress is not None:
            sys.stderr.write("\n")
        request["audio_url"] = upload.audio_url
        duration = upload.duration
        log.info("upload_done", file=str(source), audio_url=upload.audio_url, duration=duration)
    job = client.create_once(request, str(uuid.uuid4()))
    log.info("job_created", file=str(source), job_id=job.id)
    view = client.wait(job, initial=loaded.gladia.poll_initial_seconds, cap=loaded.gladia.poll_max_seconds,
                       deadline=poll_deadline(duration))
    report = publish(view, source, root, loaded.output, ours={}, owner_of=lambda path: None)
    for path, reason in report.conflicts:
        print(f"{logs.one_line(str(path))}: not written: {reason}", file=sys.stderr)
    return sorted(report.written)


def _prepared(source: Path, loaded: Config, stack: contextlib.ExitStack) -> tuple[Path, str]:
    """What to upload for a one-off: the file, or its extracted audio (videos, big files). A file that would
    need splitting is refused here: the daemon (`transcribed once`) splits and stitches."""
    from transcribed import media
    if source.stat().st_size == 0:
        raise MediaError("the file is empty")
    tools = _tools(loaded.media)
    plan, _ = tools.decide(source)
    if plan.action == "as_is":
        return source, source.name
    if plan.action == "split" or tools.ffmpeg is None:
        raise MediaError(f"{plan.reason}: too long or too large for one job; `transcribed once` splits it")
    workspace = stack.enter_context(media.Workspace(loaded.media, "oneoff"))
    extracted = media.extract(source, plan, loaded.media, tools.ffmpeg, workspace.path())
    return extracted, media.upload_name(source, extracted)


@functools.cache
def _tools(config: MediaConfig) -> MediaTools:
    from transcribed.pipeline.prepare import MediaTools

    return MediaTools.find(config)     # once per command: it says once if ffmpeg is missing


def _progress(source: Path) -> Any:
    total = max(1, source.stat().st_size)

    def show(sent: int) -> None:
        sys.stderr.write(f"\ruploading {source.name}: {min(100, sent * 100 // total):3d}%")
        sys.stderr.flush()

    return show


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ApiError):
        return exc.describe()
    if isinstance(exc, JobFailedError):
        return str(exc)
    return f"{exc.__class__.__name__}: {exc}" if isinstance(exc, OSError) else str(exc)


def _is_url(item: str) -> bool:
    parts = urlsplit(item)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


@contextlib.contextmanager
def _api(loaded: Config, use_emulator: bool) -> Iterator[GladiaConfig]:
    """Yield the Gladia settings to use: the configured API, or a private in-process emulator."""
    if not use_emulator:
        if loaded.gladia.api_key is None:
            raise ConfigError(["gladia.api_key: no API key: set GLADIA_API_KEY, gladia.api_key_file or the "
                               "systemd credential gladia-api-key, or try --emulator"])
        yield loaded.gladia
        return
    from transcribed import emulator

    key = "emulator-" + uuid.uuid4().hex
    settings = emulator.EmulatorSettings(api_keys=frozenset({key}))
    with emulator.Emulator(settings) as running:
        yield replace(loaded.gladia, base_url=running.base_url, api_key=Secret(key))

