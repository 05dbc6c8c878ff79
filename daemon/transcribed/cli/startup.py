"""The daemon's ledger at start: one daemon per ledger (a lock beside it), the ledger opened with its damage
handled (checked unless the last stop left it clean, rebuilt on --rebuild-ledger, adopting outputs already on
disk), and the clean marker written after a clean stop.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, TypeVar

import structlog

from transcribed import config
from transcribed.config import Config
from transcribed.inbox.scan import scan
from transcribed.ledger import Ledger, LedgerDamagedError, LedgerError
from transcribed.ledger import repair as ledger_repair

log = structlog.get_logger("transcribed.daemon")

Start = TypeVar("Start")


def with_ledger(loaded: Config, *, rebuild: bool, read: Callable[[Ledger], Start],
                serve: Callable[[Ledger, Start], int]) -> int:
    """Open the ledger, `read` it (reads only, before any write: may raise LedgerDamagedError), then `serve`
    with what was read; close it and mark it clean. Return `serve`'s exit code, or EX_CONFIG after saying on
    stderr why the ledger cannot be used.

    The ledger's pages are checked (PRAGMA quick_check, beside the start-up scan, passed before the first
    write) unless the file is exactly as the last clean stop left it; a damaged page found either way opens it
    again with the check, which moves the file aside and says so."""
    path = loaded.ledger.path
    clean = ledger_repair.left_clean(path)
    for checked in (rebuild, True):
        ledger = _open(loaded, rebuild=rebuild, check_pages=checked)
        if isinstance(ledger, int):
            return ledger
        pages = None if checked or clean else ledger_repair.check_pages_aside(path)
        with contextlib.closing(ledger):
            try:
                start = read(ledger)
            except LedgerDamagedError as exc:
                if checked:
                    return damaged(exc)
                if pages is not None:
                    pages()
                clean = False
                continue   # a damaged page was read: open again with the check, as below
            if pages is None or pages() is None:
                code = serve(ledger, start)
                ledger.close()
                ledger_repair.note_clean(path)
                return code
        # damaged: open again with the check, which moves the file aside and says so
    return config.EX_CONFIG


def _open(loaded: Config, *, rebuild: bool, check_pages: bool) -> Ledger | int:
    """The ledger, or the exit code after saying why it cannot be used."""
    try:
        return _open_ledger(loaded, rebuild=rebuild, check_pages=check_pages)
    except LedgerDamagedError as exc:
        return damaged(exc)
    except LedgerError as exc:
        print(f"transcribed: cannot open the ledger: {exc}", file=sys.stderr)
        return config.EX_CONFIG


def damaged(exc: LedgerDamagedError) -> int:
    """Say (log and stderr) that the ledger is damaged and how to go on; return EX_CONFIG."""
    log.critical("ledger_damaged", aside=str(exc.aside_path) if exc.aside_path else None, problem=str(exc))
    where = "has been moved aside" if exc.aside_path else "cannot be read"
    print(f"transcribed: the ledger was damaged and {where} ({exc}). Nothing will be re-transcribed "
          "silently: run `transcribed run --rebuild-ledger` to start a new ledger that keeps what could be "
          "read and adopts outputs already on disk.", file=sys.stderr)
    return config.EX_CONFIG


def _open_ledger(loaded: Config, *, rebuild: bool, check_pages: bool) -> Ledger:
    ledger = Ledger.open(loaded.ledger.path, rebuild=rebuild, check_pages=check_pages)
    if rebuild:
        from transcribed.pipeline.adopt import adopt

        files, _ = scan(loaded.inbox, settled_before_ns=None, report_passed_over=False)
        adopted = adopt(ledger, loaded, files)
        log.warning("ledger_rebuild_adopted", files=adopted, hint="files with outputs on disk are done")
    if ledger.recovery is not None:
        log.warning("ledger_rebuilt", aside=str(ledger.recovery.aside_path),
                    salvaged=str(ledger.recovery.salvaged))
    return ledger


def lock(ledger_path: Path) -> contextlib.AbstractContextManager[IO[str]]:
    """Hold an exclusive lock beside the ledger (one daemon per ledger); raise BlockingIOError if taken."""
    ledger_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(ledger_path.with_name(ledger_path.name + ".lock"), "a+", encoding="utf-8")  # noqa: SIM115
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def daemon_running(ledger_path: Path) -> int | None:
    """Return the pid of the daemon holding this ledger's lock, or None when none runs."""
    lock_path = ledger_path.with_name(ledger_path.name + ".lock")
    try:
        handle = open(lock_path, encoding="utf-8")  # noqa: SIM115
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = handle.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None
