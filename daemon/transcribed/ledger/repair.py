"""Opening the ledger file safely: tell a fresh start from damage, move damage aside, salvage what reads.

A damaged ledger is never opened over or emptied: it is renamed (with its -wal and -shm) to
`<name>.damaged-<UTC timestamp>` and the caller decides whether to stop or to start fresh. Starting
fresh copies every row that can still be read, table by table, from a scratch copy of the damaged file.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from transcribed.ledger import schema

SQLITE_HEADER = b"SQLite format 3\x00"
WAL_HEADER_SIZE = 32
BUSY_TIMEOUT_MS = 30_000


@dataclass(frozen=True)
class FileState:
    """What is on disk at the ledger path before SQLite touches it.

    kind: "missing" (no file), "empty" (zero bytes: always a problem), "database" (has bytes). `problem`
    says why the bytes cannot be a sound database, or None.
    """

    kind: Literal["missing", "empty", "database"]
    problem: str | None


def sidecar(path: Path, suffix: str) -> Path:
    """Return SQLite's companion file of `path` ("-wal" or "-shm")."""
    return path.with_name(path.name + suffix)


def wal_has_data(path: Path) -> bool:
    """Return True when the write-ahead log beside `path` holds frames (more than its header)."""
    try:
        return sidecar(path, "-wal").stat().st_size > WAL_HEADER_SIZE
    except FileNotFoundError:
        return False


def inspect(path: Path) -> FileState:
    """Look at the raw bytes of the ledger file: header, page size, and size against the page count.

    The size is checked against the header's page count only when no write-ahead log holds frames: with
    frames pending the main file is legitimately behind, and SQLite's own recovery replays them.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        if wal_has_data(path):
            return FileState("missing", "the database file is missing but its write-ahead log holds data")
        return FileState("missing", None)
    if size == 0:
        # create_fresh renames a complete ledger into place, so zero bytes here are never ours: a ledger
        # truncated to nothing would otherwise silently restart empty and re-bill everything.
        beside = " beside a write-ahead log that holds data" if wal_has_data(path) else ""
        return FileState("empty", f"zero-length database file{beside} (a ledger is never created empty; "
                                  "delete it if this is a new install)")
    with open(path, "rb") as handle:
        header = handle.read(100)
    if len(header) < 100 or not header.startswith(SQLITE_HEADER):
        return FileState("database", "not an SQLite database (bad or missing header)")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        return FileState("database", f"invalid page size {page_size} in the header")
    if size % page_size:
        return FileState("database", f"size {size} is not a whole number of {page_size}-byte pages "
                                     "(truncated, or garbage appended)")
    application_id = int.from_bytes(header[68:72], "big")
    if application_id != schema.APPLICATION_ID:
        # Checked before SQLite opens it: switching another program's database to WAL would change it.
        return FileState("database", f"not a transcribed ledger (application_id {application_id:#x})")
    change_counter = header[24:28]
    page_count = int.from_bytes(header[28:32], "big")
    valid_for = header[92:96]
    if not wal_has_data(path) and valid_for == change_counter and page_count:
        expected = page_count * page_size
        if size < expected:
            return FileState("database", f"truncated: {size} bytes, the header promises {expected}")
        if size > expected:
            return FileState("database", f"garbage after the last page: {size} bytes, header says {expected}")
    return FileState("database", None)


def check_pages(conn: sqlite3.Connection, *, tables: tuple[str, ...] = ()) -> str | None:
    """PRAGMA quick_check: return what is damaged, or None. Pages, cells and indexes only: the CHECK
    constraints are enforced on every write, and evaluating them for every row would double its cost.
    With `tables`, only those tables and their indexes are checked."""
    conn.execute("PRAGMA ignore_check_constraints = ON")
    try:
        arguments = tables or ("20",)   # a table name, or (the whole file) the number of problems to list
        rows = [row[0] for argument in arguments for row in conn.execute(f"PRAGMA quick_check({argument})")]
    finally:
        conn.execute("PRAGMA ignore_check_constraints = OFF")
    problems = [row for row in rows if row != "ok"]
    return "quick_check: " + "; ".join(problems) if problems else None


# What a start-up checks beside its scan: the bookkeeping. The stored results are most of a ledger's bytes
# (gigabytes for a large library); they are written once and read rarely, and a damaged one shows when read.
STARTUP_TABLES = tuple(name for name in schema.TABLE_COLUMNS if name != "results")


def _clean_marker(path: Path) -> Path:
    return path.with_name(path.name + ".clean")


def _identity(path: Path) -> str:
    status = path.stat()
    return f"{status.st_dev} {status.st_ino} {status.st_size} {status.st_mtime_ns}\n"


def note_clean(path: Path) -> None:
    """After the ledger was closed at a clean stop: remember the file exactly as it is (see left_clean)."""
    with contextlib.suppress(OSError):   # without it the next start checks every page: slower, never wrong
        _clean_marker(path).write_text(_identity(path), encoding="ascii")


def left_clean(path: Path) -> bool:
    """True when the ledger is exactly as a clean stop left it: same device, inode, size and mtime, and no
    write-ahead log holding data. Nothing, not even a tool or a disk fault that wrote to it through the
    filesystem, changed it since, so its pages need no check. The marker is removed: a crash from here on
    leaves none."""
    marker = _clean_marker(path)
    try:
        noted = marker.read_text(encoding="ascii")
        marker.unlink()
        return noted == _identity(path) and not wal_has_data(path)
    except (OSError, UnicodeDecodeError):
        return False


def check_pages_aside(path: Path) -> Callable[[], str | None]:
    """Start check_pages of STARTUP_TABLES on a read-only connection of its own, in a thread (SQLite runs it
    without the GIL, so a start-up scan goes on meanwhile); return a function that waits for its answer."""
    answer: list[str | None] = []

    def work() -> None:
        try:
            conn = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True)
            try:
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                answer.append(check_pages(conn, tables=STARTUP_TABLES))
            finally:
                conn.close()
        except sqlite3.Error as exc:
            answer.append(f"quick_check: {exc}")

    thread = threading.Thread(target=work, name="transcribed-ledger-check", daemon=True)
    thread.start()

    def wait() -> str | None:
        thread.join()
        return answer[0] if answer else "quick_check did not finish"

    return wait


def check_open(conn: sqlite3.Connection, path: Path, *, pages: bool = True) -> str | None:
    """Given a read-write connection to an existing ledger, return why it is damaged, or None.

    Runs PRAGMA quick_check (unless `pages` is False: the caller runs check_pages_aside), then folds the
    write-ahead log into the file and, when all of it could be
    folded in, checks the file's size against the page count (catches a tail that the log did not explain).
    The checkpoint is PASSIVE: it never waits for, or blocks, another process using the ledger.
    """
    problem = check_pages(conn) if pages else None
    if problem is not None:
        return problem
    busy, logged, moved = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    if busy == 0 and logged == moved:
        page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        page_count = int(conn.execute("PRAGMA page_count").fetchone()[0])
        size = path.stat().st_size
        if size != page_size * page_count:
            return f"file is {size} bytes but holds {page_count} pages of {page_size}"
    return None


def move_aside(path: Path, clock: Callable[[], float]) -> Path:
    """Rename the ledger and its -wal/-shm to `<name>.damaged-<UTC timestamp>[-n]`; return the new main path.

    The renames are made durable (directory fsync) before returning.
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(clock()))
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    number = 1
    while any(candidate.exists() for candidate in (aside, sidecar(aside, "-wal"), sidecar(aside, "-shm"))):
        aside = path.with_name(f"{path.name}.damaged-{stamp}-{number}")
        number += 1
    for suffix in ("", "-wal", "-shm"):
        source = sidecar(path, suffix) if suffix else path
        if source.exists():
            source.replace(sidecar(aside, suffix) if suffix else aside)
    fsync_directory(path.parent)
    return aside


def damaged_beside(path: Path) -> list[Path]:
    """Return the damaged ledgers `move_aside` left beside `path` (main files only), oldest first."""
    found = [candidate for candidate in path.parent.glob(f"{glob_escape(path.name)}.damaged-*")
             if not candidate.name.endswith(("-wal", "-shm"))]
    return sorted(found, key=lambda candidate: candidate.name)  # the names carry the UTC time of the move


def create_fresh(path: Path, configure: Callable[[sqlite3.Connection], None]) -> None:
    """Build an empty current-version ledger beside `path` and rename it into place.

    A crash part way leaves only a `<name>.new-*` scratch file (removed on the next open), never a
    half-made ledger at `path`. Stale -wal/-shm at `path` are removed first: an old log must never be
    replayed onto a new database.
    """
    remove_scratch(path)
    for suffix in ("-wal", "-shm"):
        sidecar(path, suffix).unlink(missing_ok=True)
    scratch = path.with_name(f"{path.name}.new-{os.getpid()}")
    conn = sqlite3.connect(scratch, isolation_level=None)
    try:
        configure(conn)
        schema.create(conn)
    finally:
        conn.close()
    descriptor = os.open(scratch, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    scratch.replace(path)
    fsync_directory(path.parent)


def remove_scratch(path: Path) -> None:
    """Remove scratch files a crashed `create_fresh` may have left beside `path`."""
    for leftover in path.parent.glob(f"{glob_escape(path.name)}.new-*"):
        leftover.unlink(missing_ok=True)


def salvage(aside: Path, target: sqlite3.Connection) -> dict[str, int]:
    """Copy every row that can still be read from the damaged ledger `aside` into `target`.

    Works on a scratch copy (the file kept aside is never modified). Each table is read forward by rowid
    until the first unreadable page, then backward from the end, so rows on both sides of a damaged page
    survive. Rows that break a constraint of the current schema are dropped. Return rows copied per table.
    """
    copied = {table: 0 for table in schema.TABLE_COLUMNS}
    with tempfile.TemporaryDirectory(prefix="salvage-", dir=aside.parent) as scratch_dir:
        scratch = Path(scratch_dir) / "ledger.sqlite3"
        for suffix in ("", "-wal"):
            source = sidecar(aside, suffix) if suffix else aside
            if source.exists():
                shutil.copyfile(source, sidecar(scratch, suffix) if suffix else scratch)
        if not scratch.exists():
            return copied
        try:
            source_conn = sqlite3.connect(scratch, isolation_level=None)
            # Lets SQLite read a file shorter than its header says (truncated); nothing is written to it.
            source_conn.execute("PRAGMA writable_schema = ON")
        except sqlite3.Error:
            return copied
        try:
            for table, columns in schema.TABLE_COLUMNS.items():
                copied[table] = _copy_table(source_conn, target, table, columns)
        finally:
            source_conn.close()
    return copied


def _copy_table(
    source: sqlite3.Connection, target: sqlite3.Connection, table: str, columns: tuple[str, ...]
) -> int:
    rows = dict(_readable_rows(source, table, columns))
    placeholders = ", ".join("?" for _ in columns)
    # Table and column names come from schema, never from the damaged file.
    insert = f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"  # noqa: S608
    copied = 0
    target.execute("BEGIN IMMEDIATE")
    try:
        for row in rows.values():
            try:
                copied += target.execute(insert, row).rowcount
            except sqlite3.IntegrityError:
                continue  # a row that no longer fits (dangling reference, broken invariant) is dropped
    except sqlite3.Error:
        target.execute("ROLLBACK")
        raise
    target.execute("COMMIT")
    return copied


def _readable_rows(
    source: sqlite3.Connection, table: str, columns: tuple[str, ...]
) -> Iterator[tuple[int, tuple[object, ...]]]:
    """Yield (rowid, row) for every row that reads: forward by rowid until the first unreadable page, then
    backward from the end until that point or the next unreadable page, then row by row (a lookup per rowid)
    across the gap between the two, since a scan stops at the first page it cannot read while a lookup only
    needs the pages on its own path."""
    select = f"SELECT rowid, {', '.join(columns)} FROM {table}"  # noqa: S608 (constant names)
    seen: set[int] = set()
    for order in ("ASC", "DESC"):
        try:
            # Row by row (the cursor steps SQLite once per row): a batch would lose the rows read before
            # the step that hits the damaged page.
            for row in source.execute(f"{select} ORDER BY rowid {order}"):
                if row[0] in seen:
                    break   # met the rows read the other way (or a damaged page read as the same row again)
                seen.add(row[0])
                yield row[0], tuple(row[1:])
        except sqlite3.Error:
            continue  # unreadable from here on in this direction: try the other end
    yield from _lookups_across_the_gap(source, select, seen)


GAP_MISSES = 1000   # consecutive rowids that do not read before the lookups give up (no end known)


def _lookups_across_the_gap(source: sqlite3.Connection, select: str,
                            seen: set[int]) -> Iterator[tuple[int, tuple[object, ...]]]:
    """Look up, one rowid at a time, the rows between those the scans read (or, when the scans read nothing
    past some point, until GAP_MISSES rowids in a row do not read)."""
    ordered = sorted(seen)
    gaps = [(low, high) for low, high in itertools.pairwise(ordered) if high - low > 1]
    if gaps:
        rowid, end = gaps[0][0] + 1, gaps[-1][1] - 1
    else:
        rowid, end = (ordered[-1] + 1 if ordered else 1), None
    misses = 0
    while rowid <= end if end is not None else misses < GAP_MISSES:
        try:
            row = source.execute(f"{select} WHERE rowid = ?", (rowid,)).fetchone()
        except sqlite3.Error:
            row = None
        if row is None or rowid in seen:
            misses += 1
        else:
            misses = 0
            seen.add(rowid)
            yield rowid, tuple(row[1:])
        rowid += 1


def fsync_directory(directory: Path) -> None:
    """Make renames and creations inside `directory` durable."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def glob_escape(name: str) -> str:
    """Escape glob metacharacters in a literal file name."""
    return "".join(f"[{character}]" if character in "*?[" else character for character in name)
