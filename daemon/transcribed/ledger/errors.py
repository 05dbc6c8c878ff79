"""The ledger's exceptions (re-exported by `transcribed.ledger`) and the one place sqlite3 errors become them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from transcribed.errors import TranscribedError

_CORRUPT = 11  # SQLITE_CORRUPT
_NOT_A_DATABASE = 26  # SQLITE_NOTADB


class LedgerError(TranscribedError):
    """The ledger cannot do what was asked (I/O error, disk full, closed, missing file)."""


class LedgerDamagedError(LedgerError):
    """The ledger file is damaged. `aside_path` is where it was moved (None when it was left in place, as a
    read-only open does, or when damage shows up while running); `problem` says what is wrong.
    Nothing was emptied or overwritten."""

    def __init__(self, aside_path: Path | None, problem: str) -> None:
        self.aside_path = aside_path
        self.problem = problem
        where = f"; kept aside as {aside_path}" if aside_path else ""
        super().__init__(f"ledger is damaged: {problem}{where}")


class LedgerVersionError(LedgerError):
    """The ledger was written by a newer version of transcribed (or, read-only, is not at this version).
    The file is left untouched."""


class LedgerTransitionError(LedgerError):
    """The transition is not allowed from the entry's current state, or the content key is unknown."""


def translate(exc: sqlite3.Error) -> LedgerError:
    """Map a sqlite3 error to the ledger's exception tree (by SQLite's result code, never by message)."""
    if isinstance(exc, sqlite3.IntegrityError):
        return LedgerTransitionError(f"refused by the ledger's invariants: {exc}")
    if getattr(exc, "sqlite_errorcode", 0) & 0xFF in (_CORRUPT, _NOT_A_DATABASE):
        return LedgerDamagedError(None, str(exc))
    return LedgerError(f"ledger: {exc}")
