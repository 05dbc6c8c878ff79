"""The ledger's connection handling and every read: the base that `transcribed.ledger.Ledger` extends with
transitions. Reads never write, so all of this also works on a read-only ledger (`transcribed status`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from transcribed.ledger import schema
from transcribed.ledger.connection import Recovery
from transcribed.ledger.errors import LedgerError, translate
from transcribed.ledger.rows import Entry, decode_path, encode_path, load, load_one

# SQL below is built only from these constant state lists and column names; every value is a bound parameter.
SEND_ANYWAY_META = "send_anyway:"   # + a content key: `retry` of a skipped content (Ledger.send_anyway)
SETTLED_META = "settled"   # meta name of the saved settled set (a blob; see pipeline/settled.py)
_ACTIVE = ", ".join(f"'{state}'" for state in schema.ACTIVE_STATES)
_IN_FLIGHT = ", ".join(f"'{state}'" for state in schema.IN_FLIGHT_STATES)
_NOT_HELD = "id NOT IN (SELECT content FROM holds)"


_BY_PATH = ("SELECT contents.key FROM paths JOIN contents ON contents.id = paths.content WHERE paths.path = ? "
            "AND paths.device = ? AND paths.inode = ? AND paths.size = ? AND paths.mtime_ns = ?")
_BY_IDENTITY = ("SELECT contents.key FROM paths JOIN contents ON contents.id = paths.content WHERE paths.inode = ? "
                "AND paths.device = ? AND paths.size = ? AND paths.mtime_ns = ? ORDER BY paths.seen_at DESC LIMIT 1")


@dataclass(frozen=True)
class LedgerReads:
    """One connection, one lock, consistent reads. Thread-safe: every method holds the lock."""

    def __init__(self, conn: sqlite3.Connection, path: Path, clock: Callable[[], float], *,
                 read_only: bool, recovery: Recovery | None = None) -> None:
        """Use `Ledger.open`."""
        self._conn: sqlite3.Connection | None = conn
        self._lock = threading.Lock()
        self._clock = clock
        self.path = path
        self.read_only = read_only
        self.recovery = recovery
        self._settled_dropped = False

    def close(self) -> None:
        """Close the connection (idempotent). Every committed transition is already durable."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, read_only={self.read_only})"

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """Under the lock, one read transaction: a consistent snapshot across several SELECTs."""
        with self._lock:
            conn = self._require_open()
            try:
                conn.execute("BEGIN")
                try:
                    yield conn
                finally:
                    conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise translate(exc) from exc

    @contextmanager
    def _writing(self, *, data: bool = True) -> Iterator[sqlite3.Connection]:
        """Under the lock, one write transaction taken with the write lock up front (so check-then-write is
        atomic even against another process), committed durably on success, rolled back on any error.
        The first write of data (`data`: anything but meta values) in this process also drops the saved
        settled set (see settled_blob), which that write may make stale."""
        with self._lock:
            conn = self._require_open()
            if self.read_only:
                raise LedgerError("the ledger was opened read-only")
            try:
                conn.execute("BEGIN IMMEDIATE")
                committed = False
                try:
                    dropping = data and not self._settled_dropped
                    if dropping:
                        conn.execute("DELETE FROM meta WHERE name = ?", (SETTLED_META,))
                    yield conn
                    conn.execute("COMMIT")
                    committed = True
                    self._settled_dropped = self._settled_dropped or dropping
                finally:
                    if not committed and conn.in_transaction:
                        conn.execute("ROLLBACK")
            except sqlite3.Error as exc:
                raise translate(exc) from exc

    def _require_open(self) -> sqlite3.Connection:
        if self._conn is None:
            raise LedgerError("the ledger is closed")
        return self._conn

    def _now(self) -> float:
        return float(self._clock())

    def lookup_stat(self, path: str, device: int, inode: int, size: int, mtime_ns: int) -> str | None:
        """Return the content key for a file by its stat alone, or None when it must be hashed.

        Known when this exact path was recorded with this (device, inode, size, mtime_ns), or when another
        recorded path has that identity (the file was renamed or moved; hard links likewise). A replaced
        file (new bytes: new mtime_ns or size, or a new inode) is not known. Reads only: register a new
        path with `record_seen`.
        """
        raw = encode_path(path)
        with self._lock:
            conn = self._require_open()
            try:
                row = conn.execute(_BY_PATH, (raw, device, inode, size, mtime_ns)).fetchone()
                if row is None:
                    row = conn.execute(_BY_IDENTITY, (inode, device, size, mtime_ns)).fetchone()
            except sqlite3.Error as exc:
                raise translate(exc) from exc
        return None if row is None else str(row[0])

    def get(self, key: str) -> Entry | None:
        """Return the entry for `key`, or None when unknown."""
        with self._reading() as conn:
            return load_one(conn, key)

    def entry_for_path(self, path: str) -> Entry | None:
        """Return the content last recorded at `path`, or None when the path is unknown."""
        with self._reading() as conn:
            row = conn.execute("SELECT contents.key FROM paths JOIN contents ON contents.id = paths.content "
                               "WHERE paths.path = ?", (encode_path(path),)).fetchone()
            return None if row is None else load_one(conn, row[0])

    def load_result(self, key: str) -> dict[str, Any] | None:
        """Return the stored result JSON of `key`, or None when none is stored or it no longer decodes."""
        with self._reading() as conn:
            row = conn.execute("SELECT body FROM results JOIN contents ON contents.id = results.content "
                               "WHERE contents.key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            body = json.loads(zlib.decompress(row[0]).decode("utf-8"))
        except (zlib.error, UnicodeDecodeError, ValueError, TypeError):
            return None
        return body if isinstance(body, dict) else None

    def output_owner(self, output_path: str) -> str | None:
        """Return the content key whose recorded outputs include `output_path`, or None."""
        with self._reading() as conn:
            row = conn.execute("SELECT key FROM outputs WHERE path = ?", (encode_path(output_path),)).fetchone()
        return None if row is None else str(row[0])

    def outputs_of_source(self, source: str) -> dict[str, tuple[str, str]]:
        """Return the outputs recorded as written for the source path `source`: output path -> (content key
        that wrote it, sha256 of what was written)."""
        with self._reading() as conn:
            rows = conn.execute("SELECT path, key, sha256 FROM outputs WHERE source = ?",
                                (encode_path(source),)).fetchall()
        return {decode_path(raw): (str(key), str(digest)) for raw, key, digest in rows}

    def pending(self, now: float | None = None) -> list[Entry]:
        """Unfinished work that is due, oldest first: discovered, uploading, uploaded, submitted, and failed
        entries whose retry time has come (`now` defaults to the clock); held ones are not due."""
        moment = self._now() if now is None else now
        with self._reading() as conn:
            return load(conn, f"WHERE (state IN ({_ACTIVE}) OR (state = 'failed' AND next_retry_at <= ?)) "
                              f"AND {_NOT_HELD} ORDER BY created_at, id", (moment,))

    def next_due(self) -> float | None:
        """Return the earliest retry time among failed entries that will be retried, or None."""
        with self._reading() as conn:
            row = conn.execute("SELECT MIN(next_retry_at) FROM contents WHERE state = 'failed'").fetchone()
        return None if row[0] is None else float(row[0])

    def counts(self) -> dict[str, int]:
        """Return the number of contents in each state (every state present, zero included)."""
        with self._reading() as conn:
            found = dict(conn.execute("SELECT state, COUNT(*) FROM contents GROUP BY state").fetchall())
        return {state: int(found.get(state, 0)) for state in schema.STATES}

    def in_flight(self) -> list[Entry]:
        """Entries uploading, uploaded or submitted and not held, least recently updated first."""
        with self._reading() as conn:
            return load(conn, f"WHERE state IN ({_IN_FLIGHT}) AND {_NOT_HELD} ORDER BY updated_at, id")

    def finished_paths(self) -> tuple[dict[str, tuple[tuple[int, int, int, int], str, str]], dict[str, list[str]]]:
        """The restart fast path's snapshot, in two queries: every recorded path of a done or skipped content
        (path -> (device, inode, size, mtime_ns), key, state), and the output paths of each done content."""
        paths: dict[str, tuple[tuple[int, int, int, int], str, str]] = {}
        outputs: dict[str, list[str]] = {}
        with self._reading() as conn:
            for raw, device, inode, size, mtime_ns, key, state in conn.execute(
                    "SELECT paths.path, paths.device, paths.inode, paths.size, paths.mtime_ns, contents.key, "
                    "contents.state FROM paths JOIN contents ON contents.id = paths.content "
                    "WHERE paths.device IS NOT NULL AND contents.state IN ('done', 'skipped')"):
                paths[decode_path(raw)] = ((device, inode, size, mtime_ns), key, state)
            for key, raw in conn.execute("SELECT outputs.key, outputs.path FROM outputs JOIN contents "
                                         "ON contents.key = outputs.key WHERE contents.state = 'done'"):
                outputs.setdefault(key, []).append(decode_path(raw))
        return paths, outputs

    def done_entries(self) -> list[Entry]:
        """Every finished entry, oldest first (for `transcribed render`)."""
        with self._reading() as conn:
            return load(conn, "WHERE state = 'done' ORDER BY id")

    def failures(self, limit: int = 50) -> list[Entry]:
        """Failed entries, most recently failed first, at most `limit`."""
        with self._reading() as conn:
            return load(conn, "WHERE state = 'failed' ORDER BY updated_at DESC, id DESC LIMIT ?", (limit,))

    def has_settled_blob(self) -> bool:
        """True while the blob `settled_blob` returns is there, without reading it."""
        with self._reading() as conn:
            row = conn.execute("SELECT 1 FROM meta WHERE name = ? AND typeof(value) = 'blob'",
                               (SETTLED_META,)).fetchone()
        return row is not None

    def settled_blob(self) -> bytes | None:
        """The settled set saved by `Ledger.save_settled_blob` (pipeline/settled.py), or None when there is
        none or a write of data has been made since it was saved."""
        with self._reading() as conn:
            row = conn.execute("SELECT value FROM meta WHERE name = ?", (SETTLED_META,)).fetchone()
        return row[0] if row is not None and isinstance(row[0], bytes) else None

    def get_meta(self, name: str) -> str | None:
        """Return the value stored under `name` by `set_meta`, or None."""
        with self._reading() as conn:
            row = conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def send_anyway(self, key: str) -> bool:
        """True when `transcribed retry` put `key` back after it was skipped: send it even if a rule (such
        as subtitles already there) would skip it."""
        with self._reading() as conn:
            row = conn.execute("SELECT 1 FROM meta WHERE name = ?", (SEND_ANYWAY_META + key,)).fetchone()
        return row is not None

    def skipped(self, limit: int = 50) -> list[Entry]:
        """Skipped entries, most recently skipped first, at most `limit`."""
        with self._reading() as conn:
            return load(conn, "WHERE state = 'skipped' ORDER BY updated_at DESC, id DESC LIMIT ?", (limit,))

    def conflicts(self, key: str) -> list[tuple[str, str]]:
        """Return (output path, reason) for every conflict noted for `key`, oldest first."""
        with self._reading() as conn:
            rows = conn.execute("SELECT conflicts.output_path, conflicts.reason FROM conflicts JOIN contents "
                                "ON contents.id = conflicts.content WHERE contents.key = ? "
                                "ORDER BY conflicts.noted_at, conflicts.output_path", (key,)).fetchall()
        return [(decode_path(path), str(reason)) for path, reason in rows]

    def verify(self) -> list[str]:
        """Return every problem a full integrity check and the row invariants find (empty = sound).
        Reads the whole file: for tests and diagnostics, not for every start."""
        with self._reading() as conn:
            return schema.verify(conn)
