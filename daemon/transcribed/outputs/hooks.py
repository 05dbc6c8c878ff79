"""User hooks (hooks.on_done / hooks.on_failed): run a command as an argv list, never through a shell.

Placeholders in argv items are expanded in one pass: `{source}`, `{outputs}`, `{state}`, `{reason}` and
one per output role (`{txt}`, `{srt}`, `{vtt}`, `{json}`, `{md}`, `{summary}`, `{fr.srt}`, ...). An item
that is exactly a list-valued placeholder (`"{outputs}"`) becomes one argv item per path; inside a longer
item the paths are joined with spaces. Anything else in braces is left as written (a JSON payload for
curl keeps its braces). A hook's failure (exit status, timeout, missing program) is logged and returned,
never raised: a hook is how users refresh Plex or send a notification, not part of transcribing.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

__all__ = ["HookOutcome", "expand_argv", "hook_placeholders", "run_hook"]

_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_.-]+)\}")
_TAIL_BYTES = 2000
_STANDARD_ROLES = ("txt", "srt", "vtt", "json", "md", "summary")


@dataclass(frozen=True)
class HookOutcome:
    """How a hook ended. `returncode` is None when it never started (`error` says why) or was killed
    (`timed_out`: its timeout passed, or the stop event was set); `stderr_tail` is the end of what it
    wrote to stderr (decoded, invalid bytes replaced)."""

    argv: tuple[str, ...]
    returncode: int | None
    timed_out: bool = False
    stderr_tail: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and self.error is None


def hook_placeholders(
    source: Path,
    state: str,
    reason: str = "",
    outputs: Iterable[Path] = (),
    roles: Mapping[Path, str] | None = None,
) -> dict[str, str | Sequence[str]]:
    """Build the placeholder values for a hook: the source, its outputs (a list), the state ("done",
    "failed", ...), the reason, and one entry per output role (WriteReport.roles). Standard roles that
    were not written expand to ""."""
    paths = [str(path) for path in outputs]
    values: dict[str, str | Sequence[str]] = {role: "" for role in _STANDARD_ROLES}
    for path, role in (roles or {}).items():
        values[role] = str(path)
    values.update(source=str(source), outputs=paths, state=state, reason=reason)
    return values


def expand_argv(argv: Sequence[str], placeholders: Mapping[str, str | Sequence[str]]) -> list[str]:
    """Expand placeholders in each argv item (one pass: expanded text is never expanded again)."""

    def value_of(match: re.Match[str]) -> str:
        value = placeholders.get(match.group(1))
        if value is None:
            return match.group(0)
        return value if isinstance(value, str) else " ".join(value)

    expanded: list[str] = []
    for item in argv:
        whole = _PLACEHOLDER.fullmatch(item)
        value = placeholders.get(whole.group(1)) if whole else None
        if value is not None and not isinstance(value, str):
            expanded.extend(value)
        else:
            expanded.append(_PLACEHOLDER.sub(value_of, item))
    return expanded


def run_hook(
    argv: Sequence[str],
    placeholders: Mapping[str, str | Sequence[str]],
    timeout: float,
    *,
    env: Mapping[str, str] | None = None,
    stop: threading.Event | None = None,
) -> HookOutcome:
    """Run the hook with placeholders expanded and wait for it, at most `timeout` seconds (and not past
    `stop` being set); then kill its whole process group. Return the outcome; never raise for the hook's
    own failure. `env` replaces the environment when given: the composition root passes one without
    secrets. stdin and stdout are /dev/null; stderr is kept (its tail) for the log.
    """
    command = tuple(expand_argv(argv, placeholders))
    if not command:
        return _finish(HookOutcome(command, None, error="the hook command is empty"))
    with tempfile.TemporaryFile() as errors:
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                env=dict(env) if env is not None else None,
                start_new_session=True,  # its own process group, so a timeout kills its children too
                close_fds=True,
            )
        except OSError as exc:
            return _finish(HookOutcome(command, None, error=f"cannot start: {exc.strerror or exc}"))
        timed_out = not _wait(process, timeout, stop)
        if timed_out:
            _kill_group(process)
        returncode = process.wait()
        errors.seek(max(0, os.fstat(errors.fileno()).st_size - _TAIL_BYTES))
        tail = errors.read().decode("utf-8", errors="replace").strip()
    return _finish(HookOutcome(command, None if timed_out else returncode, timed_out, tail))


def _wait(process: subprocess.Popen[bytes], timeout: float, stop: threading.Event | None) -> bool:
    """True when the process ended by itself within the timeout (and before stop was set)."""
    if stop is None:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    remaining = timeout
    while remaining > 0 and not stop.is_set():
        step = min(remaining, 0.1)
        try:
            process.wait(timeout=step)
        except subprocess.TimeoutExpired:
            remaining -= step
            continue
        return True
    return process.poll() is not None


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _finish(outcome: HookOutcome) -> HookOutcome:
    # Looked up per call, not cached at import, so that whatever logging the composition root (or a
    # test's capture) set up is the one used.
    log = structlog.get_logger(__name__)
    program = outcome.argv[0] if outcome.argv else ""
    if outcome.ok:
        log.info("hook_done", program=program)
    else:
        log.warning(
            "hook_failed",
            program=program,
            returncode=outcome.returncode,
            timed_out=outcome.timed_out,
            error=outcome.error,
            stderr_tail=outcome.stderr_tail,
        )
    return outcome
