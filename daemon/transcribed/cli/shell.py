"""What every command shares: exit codes, config loading, signal set-up and logging set-up.

Commands import this module; it imports no command and not the entry point (cli/main.py). Only the cli
package reads the environment, installs signal handlers, configures logging and exits.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Callable, Mapping

from transcribed import config, logs
from transcribed.config import Config
from transcribed.errors import ConfigError

EX_OK = 0
EX_FAILED = 1
EX_USAGE = 2
EX_UNAVAILABLE = 69   # the API (or the emulator) cannot be reached at all
EX_TEMPFAIL = 75      # interrupted; what was in flight resumes on the next run


def load_config(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Config:
    """Load the config named by --config / $TRANSCRIBED_CONFIG / the default path; print warnings."""
    loaded, warnings = config.load(getattr(args, "config", None), os.environ if environ is None else environ)
    for warning in warnings:
        print(f"transcribed: warning: {warning}", file=sys.stderr)
    return loaded


def print_config_error(exc: ConfigError) -> None:
    """Print every problem of an invalid config, one line each, to stderr."""
    where = f" in {exc.source}" if exc.source else ""
    print(f"transcribed: invalid configuration{where} ({len(exc.problems)} problem"
          f"{'s' if len(exc.problems) != 1 else ''}):", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {logs.one_line(problem)}", file=sys.stderr)


def usage(parser: argparse.ArgumentParser) -> int:
    """Print a command group's help to stderr; return EX_USAGE."""
    parser.print_help(sys.stderr)
    return EX_USAGE


def install_stop_signals(stop: threading.Event, on_second: Callable[[], None] | None,
                         on_first: Callable[[str], None] | None = None) -> None:
    """First SIGTERM/SIGINT sets `stop` (drain); a second calls `on_second` (stop at once)."""
    import signal

    def handler(signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if not stop.is_set():
            stop.set()
            if on_first is not None:
                on_first(name)
        elif on_second is not None:
            on_second()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def setup_logging(loaded: Config, *, stream: object = None) -> logs.Redactor:
    """Configure logs once from the config; the key is redacted from every event."""
    token = loaded.integrations.token
    redactor = logs.Redactor([secret.reveal() for secret in (loaded.gladia.api_key, token) if secret is not None])
    out = stream if stream is not None else sys.stdout
    return logs.configure(loaded.log.format, loaded.log.level, stream=out, redactor=redactor)  # type: ignore[arg-type]


FAKE_NOW_VARIABLE = "TRANSCRIBED_FAKE_NOW_FILE"


class FileClock:
    """Test hook (TRANSCRIBED_FAKE_NOW_FILE): the budget's clock read from a file holding epoch seconds.

    The time runs on from the moment the file was last written: now = its value + (real now - its mtime), so
    a test moves the clock by rewriting the file, and time still passes in between. An unreadable or
    malformed file keeps the last good reading. Only the budget's periods use it.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._offset = 0.0

    def __call__(self) -> float:
        import time

        try:
            with open(self._path, encoding="ascii") as handle:
                written = os.fstat(handle.fileno()).st_mtime
                value = float(handle.read().strip())
            self._offset = value - written
        except (OSError, ValueError):
            pass
        return time.time() + self._offset


def budget_clock(environ: Mapping[str, str]) -> tuple[Callable[[], float], bool]:
    """The clock the budget's periods follow, and whether it is the test hook's (see FileClock)."""
    import time

    path = environ.get(FAKE_NOW_VARIABLE)
    if path:
        return FileClock(path), True
    return time.time, False
