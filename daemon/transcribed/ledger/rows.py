"""Turning ledger rows into `Entry` values: the typed, immutable view the pipeline and the CLI read.

Reads only; every function takes a connection the caller already holds (and locks).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, TypeVar, cast

State = Literal["discovered", "uploading", "uploaded", "submitted", "done", "failed", "skipped"]

CONTENT_COLUMNS = (
    "id, key, state, size, duration, audio_url, job_id, result_url, attempt_id, job_attempts, attempts, "
    "next_retry_at, reason, last_error, created_at, updated_at"
)
_CHUNK = 500  # values per IN (...) list: well under SQLite's bound-parameter limit
_Value = TypeVar("_Value", int, str)


@dataclass(frozen=True)
class Entry:
    """One content (distinct bytes) as the ledger knows it.

    `paths`: where it was seen, most recently seen first. `outputs`: output path -> sha256 of what was
    written. `attempt_id`: the id sent in custom_metadata with the last create request (set before the
    POST; with no `job_id` it is an intent whose outcome is unknown). `job_attempts`: create requests
    made for it. `attempts`: transient failures since the last success. `next_retry_at`: when a failed
    entry is due again (None on a failed entry = permanent). `last_error`: the most recent failure
    reason, kept after the entry moves on.
    """

    key: str
    state: State
    size: int
    paths: tuple[str, ...]
    audio_url: str | None
    job_id: str | None
    result_url: str | None
    attempt_id: str | None
    job_attempts: int
    attempts: int
    next_retry_at: float | None
    reason: str | None
    duration: float | None
    outputs: Mapping[str, str]
    created_at: float
    updated_at: float
    last_error: str | None = None


def encode_path(path: str) -> bytes:
    """A path as the filesystem's bytes (undecodable names survive as they are)."""
    return os.fsencode(path)


def decode_path(raw: bytes | str) -> str:
    """The inverse of `encode_path`; tolerates text written by hand or by an older version."""
    return raw if isinstance(raw, str) else os.fsdecode(raw)


def safe_text(text: str) -> str:
    """Text that SQLite can store as UTF-8: characters it cannot encode become backslash escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def load(conn: sqlite3.Connection, where: str, parameters: Sequence[object] = ()) -> list[Entry]:
    """Return the entries selected by `SELECT ... FROM contents <where>`, with their paths and outputs.

    Paths and outputs are fetched in batches (a few queries per 500 entries, not two per entry).
    """
    # `where` is always a constant clause written by the ledger; values are bound parameters.
    query = f"SELECT {CONTENT_COLUMNS} FROM contents {where}"  # noqa: S608
    rows = conn.execute(query, tuple(parameters)).fetchall()
    paths: dict[int, list[str]] = {row[0]: [] for row in rows}
    outputs: dict[str, dict[str, str]] = {row[1]: {} for row in rows}
    for ids in _chunks(list(paths)):
        marks = ", ".join("?" for _ in ids)  # placeholders only: the values themselves are bound
        for content, path in conn.execute(
            f"SELECT content, path FROM paths WHERE content IN ({marks}) "  # noqa: S608
            "ORDER BY seen_at DESC, path DESC", ids,
        ):
            paths[content].append(decode_path(path))
    for keys in _chunks(list(outputs)):
        marks = ", ".join("?" for _ in keys)
        for key, path, digest in conn.execute(
            f"SELECT key, path, sha256 FROM outputs WHERE key IN ({marks}) ORDER BY path", keys  # noqa: S608
        ):
            outputs[key][decode_path(path)] = digest
    return [_entry(row[1:], tuple(paths[row[0]]), outputs[row[1]]) for row in rows]


def load_one(conn: sqlite3.Connection, key: str) -> Entry | None:
    """Return the entry for `key`, or None when the ledger does not know it."""
    entries = load(conn, "WHERE key = ?", (key,))
    return entries[0] if entries else None


def _entry(row: Sequence[object], paths: tuple[str, ...], outputs: dict[str, str]) -> Entry:
    (key, state, size, duration, audio_url, job_id, result_url, attempt_id, job_attempts, attempts,
     next_retry_at, reason, last_error, created_at, updated_at) = row
    return Entry(
        key=cast(str, key),
        state=cast(State, state),
        size=cast(int, size),
        paths=paths,
        audio_url=cast("str | None", audio_url),
        job_id=cast("str | None", job_id),
        result_url=cast("str | None", result_url),
        attempt_id=cast("str | None", attempt_id),
        job_attempts=cast(int, job_attempts),
        attempts=cast(int, attempts),
        next_retry_at=cast("float | None", next_retry_at),
        reason=cast("str | None", reason),
        duration=cast("float | None", duration),
        outputs=MappingProxyType(outputs),
        created_at=cast(float, created_at),
        updated_at=cast(float, updated_at),
        last_error=cast("str | None", last_error),
    )


def _chunks(values: list[_Value]) -> Iterable[list[_Value]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start:start + _CHUNK]
