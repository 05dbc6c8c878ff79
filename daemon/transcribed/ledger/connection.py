"""Opening the ledger's database: fresh, existing, damaged (kept aside, maybe rebuilt) or read-only.

Returns a configured sqlite3 connection; `transcribed.ledger.Ledger.open` wraps it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from transcribed.ledger import repair, schema
from transcribed.ledger.errors import LedgerDamagedError, LedgerError, LedgerVersionError


@dataclass(frozen=True)
class Recovery:
    """What `Ledger.open(..., rebuild=True)` did with a damaged file: where it went, what was wrong, and the
    rows salvaged into the new ledger, per table."""

    aside_path: Path
    problem: str
    salvaged: Mapping[str, int] = field(default_factory=dict)


def configure(conn: sqlite3.Connection) -> None:
    """WAL (readers never block the writer), synchronous=FULL (a commit is on disk when it returns),
    a busy timeout for the CLI writing beside the daemon, and enforced references."""
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise LedgerError(f"cannot put the ledger in WAL mode (got {mode!r}): is it on a network share?")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(f"PRAGMA busy_timeout = {repair.BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")


def connect(path: Path) -> sqlite3.Connection:
    """A configured read-write connection shared by threads (the caller serialises its use)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        configure(conn)
    except (sqlite3.Error, LedgerError):
        conn.close()
        raise
    return conn


def open_for_writing(
    path: Path, clock: Callable[[], float], *, rebuild: bool, check_pages: bool = True
) -> tuple[sqlite3.Connection, Recovery | None]:
    """Return a connection to a sound current-version ledger at `path`, and what recovery was done.

    Missing (and no write-ahead log holding data): a fresh ledger. Damaged (zero-length included): moved aside,
    then LedgerDamagedError, or (rebuild) a fresh ledger with every readable row salvaged. Missing while an
    earlier damaged file lies aside: LedgerDamagedError naming it, or (rebuild) salvage from the newest.
    A newer ledger: LedgerVersionError, untouched. `check_pages=False` leaves out PRAGMA quick_check (the
    caller runs it when it must, and reopens with the check when it finds damage).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    repair.remove_scratch(path)
    found = repair.inspect(path)
    problem = found.problem
    if problem is None and found.kind == "database":
        conn, problem = _open_existing(path, check_pages)
        if conn is not None:
            return conn, None
    earlier = repair.damaged_beside(path) if found.kind == "missing" else []
    if problem is None and not earlier:
        repair.create_fresh(path, configure)
        return connect(path), None
    if problem is None:
        # A damaged ledger was moved aside by an earlier start and nothing replaced it: starting empty now
        # would re-transcribe everything it knew. Only an explicit rebuild may go on (salvaging from it).
        aside, problem = earlier[-1], "the ledger is missing and a damaged one lies beside it"
    else:
        aside = repair.move_aside(path, clock)
    if not rebuild:
        raise LedgerDamagedError(aside, problem)
    repair.create_fresh(path, configure)
    conn = connect(path)
    try:
        salvaged = repair.salvage(aside, conn)
    except sqlite3.Error:
        conn.close()
        raise
    return conn, Recovery(aside, problem, salvaged)


def _open_existing(path: Path, check_pages: bool) -> tuple[sqlite3.Connection | None, str | None]:
    try:
        conn = connect(path)
    except sqlite3.DatabaseError as exc:
        return None, f"cannot be opened: {exc}"
    try:
        problem = repair.check_open(conn, path, pages=check_pages)
        if problem is None:
            schema.ensure(conn)
            return conn, None
    except schema.SchemaError as exc:
        if exc.newer:
            conn.close()
            raise LedgerVersionError(str(exc)) from exc
        problem = str(exc)
    except sqlite3.DatabaseError as exc:
        problem = str(exc)
    conn.close()
    return None, problem


def open_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection for `status` and friends: never creates, moves or writes the ledger.

    Raise LedgerError when there is no ledger, LedgerDamagedError(None, ...) when it is damaged,
    LedgerVersionError when it is not at this program's schema version.
    """
    found = repair.inspect(path)
    if found.problem is not None:
        raise LedgerDamagedError(None, found.problem)
    if found.kind != "database":
        raise LedgerError(f"no ledger at {path}")
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {repair.BUSY_TIMEOUT_MS}")
        rows = [row[0] for row in conn.execute("PRAGMA quick_check(20)")]
        if rows != ["ok"]:
            raise LedgerDamagedError(None, "quick_check: " + "; ".join(rows))
        schema.check_version(conn)
    except schema.SchemaError as exc:
        conn.close()
        raise LedgerVersionError(str(exc)) from exc
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise LedgerDamagedError(None, str(exc)) from exc
    except LedgerError:
        conn.close()
        raise
    return conn
