"""structlog setup, called once by the cli package: JSON lines for journald, readable colours on a terminal.

Every event is one line whatever the file names hold (control characters escaped, invalid UTF-8 kept as
escapes), exceptions are rendered without local variables, and every known secret is redacted from every
field before anything is written.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED = "[redacted]"
_CONTROL = {i: f"\\x{i:02x}" for i in range(32)} | {0x7F: "\\x7f", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}


class Redactor:
    """A processor that replaces every secret (e.g. the API key) in every string field with [redacted]."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: tuple[str, ...] = ()
        self.update(secrets)

    def update(self, secrets: Iterable[str]) -> None:
        """Replace the set of secrets (on config reload)."""
        self.secrets = tuple(sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True))

    def __call__(self, logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
        if not self.secrets:
            return event
        return {key: self._clean(value) for key, value in event.items()}

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self.secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        if isinstance(value, BaseException | bytes):
            return self._clean(str(value))
        return value


def one_line(text: str) -> str:
    """Escape control characters and lone surrogates (from undecodable file names) so text is one line."""
    text = text.translate(_CONTROL)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _one_line_fields(logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
    for key, value in event.items():
        if isinstance(value, str) and key not in ("exception",):
            event[key] = one_line(value)
    return event


def _one_line_exception(logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
    """On a terminal, an exception is one line: its type and message (tracebacks belong in debug JSON)."""
    exc_info = event.pop("exc_info", None)
    if exc_info:
        if exc_info is True:
            exc_info = sys.exc_info()
        if isinstance(exc_info, BaseException):
            error: BaseException | None = exc_info
        elif isinstance(exc_info, tuple):
            error = exc_info[1]
        else:
            error = None
        if error is not None:
            event["error"] = one_line(f"{error.__class__.__name__}: {error}")
    return event


def configure(fmt: str = "auto", level: str = "info", *, stream: TextIO | None = None,
              redactor: Redactor | None = None) -> Redactor:
    """Set up structlog for the whole process; return the redactor so secrets can be updated on reload.

    fmt "auto" means JSON unless the stream is a terminal.
    """
    stream = stream or sys.stdout
    redactor = redactor or Redactor()
    is_terminal = hasattr(stream, "isatty") and stream.isatty()
    as_json = fmt == "json" or (fmt == "auto" and not is_terminal)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: list[Processor]
    if as_json:
        renderer = [
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)),
            redactor,
            structlog.processors.JSONRenderer(sort_keys=False),
        ]
    else:
        renderer = [
            _one_line_exception,
            redactor,
            _one_line_fields,
            structlog.dev.ConsoleRenderer(colors=is_terminal, exception_formatter=structlog.dev.plain_traceback),
        ]
    structlog.configure(
        processors=[*shared, *renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    return redactor
