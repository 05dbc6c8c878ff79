"""The ledger: what the daemon knows about every content it has seen, in SQLite. This package is the only
code that touches the database.

One row per distinct content (key "sha256:<hex>" of the bytes, or "url:<hex>" of a link file's normalised
URL; either followed by "+<request digest>" when a folder's settings change the request) carrying its state,
plus the paths where it was seen, create-request intents, the compressed Gladia result, the outputs written
and small metadata.
Every transition is its own durable transaction (WAL, synchronous=FULL), committed before the method
returns, so the caller's next side effect happens only after the step is on disk. One connection guarded by
a lock serves every thread. `Ledger.open(..., read_only=True)` is for `status` while the daemon runs.

Guards that protect "at most one paid job per content" raise LedgerTransitionError instead of writing:
`mark_intent` refuses while a job is recorded or a different intent is unresolved (call `clear_job` first),
`mark_submitted` refuses without an intent, and uploads and job changes are refused once done.
"""

from __future__ import annotations

import json
import sqlite3
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from transcribed.ledger import connection
from transcribed.ledger.connection import Recovery
from transcribed.ledger.errors import (
    LedgerDamagedError,
    LedgerError,
    LedgerTransitionError,
    LedgerVersionError,
    translate,
)
from transcribed.ledger.reads import SEND_ANYWAY_META, SETTLED_META
from transcribed.ledger.rows import Entry, State, encode_path, load_one, safe_text
from transcribed.ledger.spending import LedgerSpending, Spend, release_open_in, reserve_in, spend_in

__all__ = [
    "Entry", "Ledger", "LedgerDamagedError", "LedgerError", "LedgerTransitionError", "LedgerVersionError",
    "Recovery", "State",
]

_Identity = tuple[int | None, int | None, int | None, int | None]


class _Row(NamedTuple):
    id: int
    state: str
    audio_url: str | None
    job_id: str | None
    attempt_id: str | None


class Ledger(LedgerSpending):
    """The durable record of every content (see the module docstring). Thread-safe."""

    @classmethod
    def open(cls, path: Path, *, clock: Callable[[], float] = time.time, rebuild: bool = False,
             read_only: bool = False, check_pages: bool = True) -> Ledger:
        """Open (creating when absent) the ledger at `path`.

        A missing file starts a fresh ledger (built beside it and renamed into place, so the path never
        holds a half-made ledger). A damaged file (zero-length, not a database, truncated, garbage tail,
        failing quick_check, not a ledger, or a missing file whose -wal holds data) is
        moved aside to `<path>.damaged-<UTC timestamp>` with its -wal/-shm, then: raise LedgerDamagedError
        carrying that path; or, with `rebuild=True`, start fresh, copy every readable row over and say so in
        `ledger.recovery` (and meta "rebuilt_from"). A missing file while an earlier damaged one lies aside
        is the same case (the next start after a refusal must not start empty): LedgerDamagedError naming it,
        or with `rebuild=True` a fresh ledger salvaged from the newest one. A sound file is opened as it is,
        whatever `rebuild`.
        Raise LedgerVersionError for a ledger written by a newer version (left untouched).
        `read_only=True` never creates, moves or writes: damage raises LedgerDamagedError(None, ...).
        `clock` (wall-clock seconds) stamps every row; tests inject their own. `check_pages=False` leaves
        PRAGMA quick_check to the caller (repair.check_pages_aside).
        """
        path = Path(path)
        try:
            if read_only:
                return cls(connection.open_read_only(path), path, clock, read_only=True)
            conn, recovery = connection.open_for_writing(path, clock, rebuild=rebuild, check_pages=check_pages)
        except sqlite3.Error as exc:
            raise translate(exc) from exc
        except OSError as exc:
            raise LedgerError(f"cannot open the ledger {path}: {exc.strerror or exc}") from exc
        ledger = cls(conn, path, clock, read_only=False, recovery=recovery)
        if recovery is not None:
            with ledger._writing():   # drops a settled set copied over from the damaged file
                pass
            ledger.set_meta("rebuilt_from", str(recovery.aside_path))
        return ledger

    @staticmethod
    def _row(conn: sqlite3.Connection, key: str) -> _Row:
        row = conn.execute("SELECT id, state, audio_url, job_id, attempt_id FROM contents WHERE key = ?",
                           (key,)).fetchone()
        if row is None:
            raise LedgerTransitionError(f"unknown content {key}")
        return _Row(*row)

    def _update(self, conn: sqlite3.Connection, key: str, assignments: str, *values: object) -> None:
        # `assignments` is always a constant written in this class; values are bound parameters.
        # Any transition lifts a hold: the content is moving again.
        conn.execute("DELETE FROM holds WHERE content = (SELECT id FROM contents WHERE key = ?)", (key,))
        conn.execute(f"UPDATE contents SET {assignments}, updated_at = ? WHERE key = ?",  # noqa: S608
                     (*values, self._now(), key))

    def record_seen(self, key: str, path: str, root: str, device: int, inode: int, size: int,
                    mtime_ns: int) -> tuple[Entry, bool]:
        """Record that the content `key` is at `path` (under inbox `root`) with this stat.

        Insert the content as "discovered" when new; point `path` at it (a path that held other bytes
        before now maps to the new content). Writes nothing when all of that is already recorded.
        Return (entry, created).
        """
        now = self._now()
        with self._writing() as conn:
            known = conn.execute("SELECT id, size FROM contents WHERE key = ?", (key,)).fetchone()
            if known is None:
                content = conn.execute("INSERT INTO contents (key, state, size, created_at, updated_at) "
                                       "VALUES (?, 'discovered', ?, ?, ?)", (key, size, now, now)).lastrowid
            else:
                content = known[0]
                if known[1] != size:
                    self._update(conn, key, "size = ?", size)
            assert content is not None
            self._put_path(conn, content, path, root, (device, inode, size, mtime_ns), now)
            entry = load_one(conn, key)
        assert entry is not None  # just written in the same transaction
        return entry, known is None

    @staticmethod
    def _put_path(conn: sqlite3.Connection, content: int, path: str, root: str, identity: _Identity,
                  now: float) -> None:
        raw_path, raw_root = encode_path(path), encode_path(root)
        known = conn.execute("SELECT content, root, device, inode, size, mtime_ns FROM paths WHERE path = ?",
                             (raw_path,)).fetchone()
        if known is not None and tuple(known) == (content, raw_root, *identity):
            return
        conn.execute("INSERT OR REPLACE INTO paths (path, content, root, device, inode, size, mtime_ns, "
                     "seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (raw_path, content, raw_root, *identity, now))

    def mark_uploading(self, key: str) -> None:
        """-> uploading (any previous audio URL is dropped).

        Refused when done, or while a job or an unresolved intent is recorded (`clear_job` first).
        """
        with self._writing() as conn:
            self._refuse_with_job(self._row(conn, key), key)
            self._update(conn, key, "state = 'uploading', audio_url = NULL, next_retry_at = NULL, "
                                    "reason = NULL")

    def mark_uploaded(self, key: str, audio_url: str, duration: float | None = None) -> None:
        """-> uploaded with the audio URL Gladia returned, and the media duration when known (None keeps a
        duration recorded before). Same refusals as `mark_uploading`."""
        with self._writing() as conn:
            self._refuse_with_job(self._row(conn, key), key)
            self._update(conn, key, "state = 'uploaded', audio_url = ?, duration = COALESCE(?, duration), "
                                    "next_retry_at = NULL, reason = NULL", audio_url, duration)

    @staticmethod
    def _refuse_with_job(row: _Row, key: str) -> None:
        if row.state == "done":
            raise LedgerTransitionError(f"cannot upload {key}: it is done")
        if row.job_id is not None or row.attempt_id is not None:
            raise LedgerTransitionError(f"cannot upload {key}: job {row.job_id} / attempt {row.attempt_id} is "
                                        "recorded (resolve it, then clear_job)")

    def mark_intent(self, key: str, attempt_id: str, spend: Spend | None = None) -> None:
        """Durably record that a create request (POST /v2/pre-recorded) carrying `attempt_id` in
        custom_metadata is about to be sent; job_attempts += 1. The entry must be uploaded (or failed) with
        an audio URL; it stays "uploaded" with `attempt_id` set until `mark_submitted`.

        Re-recording the same attempt id (re-POST after a lookup found nothing) is allowed. Refused when a
        job id is recorded, or a different attempt id is unresolved: look it up, then `clear_job`.
        With `spend`, its audio seconds are reserved in the same transaction; raise BudgetRefused (nothing
        written) when they do not fit a period's limit.
        """
        now = self._now()
        with self._writing() as conn:
            row = self._row(conn, key)
            if row.state not in ("uploaded", "failed") or row.audio_url is None:
                raise LedgerTransitionError(f"cannot create a job for {key}: state {row.state!r}, "
                                            f"audio URL {'recorded' if row.audio_url else 'missing'}")
            if row.job_id is not None or row.attempt_id not in (None, attempt_id):
                raise LedgerTransitionError(f"cannot create a job for {key}: job {row.job_id} / attempt "
                                            f"{row.attempt_id} is recorded (resolve it, then clear_job)")
            if spend is not None:
                reserve_in(conn, row.id, attempt_id, spend, now)
            conn.execute("INSERT OR IGNORE INTO intents (attempt_id, content, created_at) VALUES (?, ?, ?)",
                         (attempt_id, row.id, now))
            self._update(conn, key, "state = 'uploaded', attempt_id = ?, job_attempts = job_attempts + 1, "
                                    "next_retry_at = NULL, reason = NULL", attempt_id)

    def mark_submitted(self, key: str, job_id: str, result_url: str) -> None:
        """-> submitted with the job Gladia created for the recorded intent. Idempotent for the same job.

        Refused without a recorded intent, when done, or when a different job is already recorded.
        """
        with self._writing() as conn:
            row = self._row(conn, key)
            if row.attempt_id is None or row.state == "done" or row.job_id not in (None, job_id):
                raise LedgerTransitionError(f"cannot record job {job_id} for {key}: state {row.state!r}, "
                                            f"attempt {row.attempt_id}, job {row.job_id}")
            conn.execute("UPDATE intents SET job_id = ? WHERE attempt_id = ?", (job_id, row.attempt_id))
            spend_in(conn, row.attempt_id, self._now())
            self._update(conn, key, "state = 'submitted', job_id = ?, result_url = ?, next_retry_at = NULL, "
                                    "reason = NULL", job_id, result_url)

    def store_result(self, key: str, body: Mapping[str, Any]) -> None:
        """Keep Gladia's result JSON for `key` (zlib-compressed), replacing any earlier one."""
        packed = zlib.compress(json.dumps(body, separators=(",", ":")).encode("utf-8"))
        with self._writing() as conn:
            content = self._row(conn, key).id
            conn.execute("INSERT OR REPLACE INTO results (content, body, stored_at) VALUES (?, ?, ?)",
                         (content, packed, self._now()))

    def mark_done(self, key: str, outputs: Mapping[str, str]) -> None:
        """-> done, recording `outputs` (output path -> sha256) beside any recorded before (the same path is
        overwritten). Call only once the outputs are durable. attempts resets; intents are closed."""
        now = self._now()
        with self._writing() as conn:
            content = self._row(conn, key).id
            self._put_outputs(conn, key, outputs, now)
            conn.execute("UPDATE intents SET closed_at = ? WHERE content = ? AND closed_at IS NULL",
                         (now, content))
            self._update(conn, key, "state = 'done', attempts = 0, next_retry_at = NULL, reason = NULL")

    @staticmethod
    def _put_outputs(conn: sqlite3.Connection, key: str, outputs: Mapping[str, str], now: float,
                     source: str | None = None) -> None:
        """Record `outputs` as written by `key` (for the source path `source`; None keeps the recorded one)."""
        raw_source = encode_path(source) if source is not None else None
        conn.executemany("INSERT INTO outputs (path, key, sha256, written_at, source) VALUES (?, ?, ?, ?, ?) "
                         "ON CONFLICT (path) DO UPDATE SET key = excluded.key, sha256 = excluded.sha256, "
                         "written_at = excluded.written_at, source = COALESCE(excluded.source, outputs.source)",
                         [(encode_path(path), key, digest, now, raw_source) for path, digest in outputs.items()])

    def claim_outputs(self, key: str, source: str, outputs: Mapping[str, str], *,
                      released: Sequence[str] = ()) -> None:
        """In one transaction: record `outputs` (output path -> sha256, durable on disk) as written by `key`
        for the source path `source`, and forget the records of `released` (stale outputs removed from disk).
        The content's state is not changed (`mark_done` follows once every path has its outputs)."""
        with self._writing() as conn:
            self._put_outputs(conn, key, outputs, self._now(), source)
            conn.executemany("DELETE FROM outputs WHERE path = ?", [(encode_path(path),) for path in released])

    def move_outputs(self, source: str, moved_to: str) -> None:
        """The source at `source` was moved to `moved_to` (output.after = "move"): the outputs written for it
        now belong to the moved file, so new content arriving at `source` does not take them over."""
        with self._writing() as conn:
            conn.execute("UPDATE outputs SET source = ? WHERE source = ?", (encode_path(moved_to),
                                                                           encode_path(source)))

    def adopt_done(self, key: str, path: str, outputs: Mapping[str, str], *, root: str = "",
                   device: int | None = None, inode: int | None = None, size: int | None = None,
                   mtime_ns: int | None = None) -> Entry:
        """Record `key` (found at `path`) as done from its outputs already on disk (rebuild after damage).

        Creates the content when unknown (size 0 unless given; a later `record_seen` fills in the size and
        the stat fast path). Job fields already recorded are kept. Return the entry.
        """
        now = self._now()
        with self._writing() as conn:
            known = conn.execute("SELECT id FROM contents WHERE key = ?", (key,)).fetchone()
            content: int | None = known[0] if known else conn.execute(
                "INSERT INTO contents (key, state, size, created_at, updated_at) VALUES (?, 'done', ?, ?, ?)",
                (key, size or 0, now, now)).lastrowid
            assert content is not None  # a rowid table always yields one
            self._put_path(conn, content, path, root, (device, inode, size, mtime_ns), now)
            self._put_outputs(conn, key, outputs, now, path)
            self._update(conn, key, "state = 'done', attempts = 0, next_retry_at = NULL, reason = NULL")
            entry = load_one(conn, key)
        assert entry is not None  # just written in the same transaction
        return entry

    def mark_failed(self, key: str, reason: str, *, retry_at: float | None) -> None:
        """-> failed with `reason`; attempts += 1. `retry_at` None = permanent (until `reset_for_retry`),
        else the wall-clock time from which `pending()` returns it again (stored: survives restarts).
        Job fields are kept, so a retry resumes where it stopped (polls the job, looks the intent up).
        For a job that ended in error and should be replaced by a new one, `clear_job` first."""
        text = safe_text(reason)
        with self._writing() as conn:
            self._row(conn, key)
            self._update(conn, key, "state = 'failed', reason = ?, last_error = ?, attempts = attempts + 1, "
                                    "next_retry_at = ?", text, text, retry_at)

    def mark_skipped(self, key: str, reason: str) -> None:
        """-> skipped with `reason`: not transcribed unless `reset_for_retry`."""
        text = safe_text(reason)
        with self._writing() as conn:
            self._row(conn, key)
            self._update(conn, key, "state = 'skipped', reason = ?, next_retry_at = NULL", text)

    def clear_job(self, key: str, *, keep_upload: bool) -> None:
        """Forget the job and intent of `key` so a new job can be created: -> uploaded (keeping the audio URL)
        when `keep_upload` and one is recorded, else -> discovered (audio URL dropped). Refused when done.

        Call it only once the old job is known to have ended or never to have existed (lookup by attempt id).
        """
        now = self._now()
        with self._writing() as conn:
            row = self._row(conn, key)
            if row.state == "done":
                raise LedgerTransitionError(f"cannot clear the job of {key}: it is done")
            target = "uploaded" if keep_upload and row.audio_url is not None else "discovered"
            release_open_in(conn, row.id, now)
            conn.execute("UPDATE intents SET closed_at = ? WHERE content = ? AND closed_at IS NULL",
                         (now, row.id))
            self._update(conn, key, "state = ?, job_id = NULL, result_url = NULL, attempt_id = NULL, "
                                    "audio_url = CASE WHEN ? = 'uploaded' THEN audio_url END, "
                                    "next_retry_at = NULL, reason = NULL", target, target)

    def fail_job(self, key: str, reason: str) -> None:
        """A job that ended in error, for good: -> failed (permanent) with `reason`, the job and intent
        forgotten and the upload kept, in one transaction, so `retry` creates a new job from the same
        upload instead of polling a dead one."""
        text = safe_text(reason)
        now = self._now()
        with self._writing() as conn:
            row = self._row(conn, key)
            if row.state == "done":
                raise LedgerTransitionError(f"cannot fail {key}: it is done")
            release_open_in(conn, row.id, now)
            conn.execute("UPDATE intents SET closed_at = ? WHERE content = ? AND closed_at IS NULL",
                         (now, row.id))
            self._update(conn, key, "state = 'failed', job_id = NULL, result_url = NULL, attempt_id = NULL, "
                                    "reason = ?, last_error = ?, attempts = attempts + 1, next_retry_at = NULL",
                         text, text)

    def reset_for_retry(self, key: str) -> None:
        """`transcribed retry`: failed/skipped -> submitted when a job is recorded (poll it again: no new
        job), else uploaded when an audio URL is recorded, else discovered; attempts resets to 0.
        A skipped content is also marked `send_anyway` (the user asked for it: rules that skip files, such
        as subtitles already there, no longer apply to it). Refused in any other state."""
        with self._writing() as conn:
            row = self._row(conn, key)
            if row.state not in ("failed", "skipped"):
                raise LedgerTransitionError(f"cannot retry {key}: it is {row.state}, not failed or skipped")
            if row.state == "skipped":
                conn.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, '1')", (SEND_ANYWAY_META + key,))
            target = "submitted" if row.job_id else "uploaded" if row.audio_url else "discovered"
            self._update(conn, key, "state = ?, attempts = 0, next_retry_at = NULL, reason = NULL", target)

    def forget_path(self, path: str) -> bool:
        """`transcribed forget`: drop `path` from the ledger; return False when it was not recorded.

        When no other path holds that content, the content is forgotten too (seen again, it is new work),
        unless it is not done and holds a job or an unresolved create request: that is kept, so it is never
        paid twice. Records of outputs written stay, so `output_owner` still answers for files on disk.
        """
        raw = encode_path(path)
        with self._writing() as conn:
            found = conn.execute("SELECT content FROM paths WHERE path = ?", (raw,)).fetchone()
            if found is None:
                return False
            conn.execute("DELETE FROM paths WHERE path = ?", (raw,))
            state, job_id, attempt_id = conn.execute(
                "SELECT state, job_id, attempt_id FROM contents WHERE id = ?", found).fetchone()
            holds_job = state != "done" and (job_id is not None or attempt_id is not None)
            others = conn.execute("SELECT 1 FROM paths WHERE content = ? LIMIT 1", found).fetchone()
            if others is None and not holds_job:
                conn.execute("DELETE FROM meta WHERE name = (SELECT ? || key FROM contents WHERE id = ?)",
                             (SEND_ANYWAY_META, found[0]))
                conn.execute("DELETE FROM contents WHERE id = ?", found)
            return True

    def mark_send_anyway(self, key: str) -> None:
        """Send `key` even where a rule (such as subtitles already there) would skip it: the user or a caller
        asked for its transcript (read back by `send_anyway`)."""
        self.set_meta(SEND_ANYWAY_META + key, "1")

    def set_meta(self, name: str, value: str) -> None:
        """Store a small named value (last_api_error, paused_reason, daemon pid, counters...)."""
        with self._writing(data=False) as conn:
            conn.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, safe_text(value)))

    def save_settled_blob(self, blob: bytes) -> None:
        """Keep the settled set (pipeline/settled.py) for the next start; dropped by the next write of data."""
        with self._writing(data=False) as conn:
            conn.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (SETTLED_META, blob))

    def note_conflict(self, key: str, output_path: str, reason: str) -> None:
        """Record that an output of `key` could not be written at `output_path` (e.g. a file we did not write
        is there); noting the same pair again replaces the reason."""
        with self._writing() as conn:
            content = self._row(conn, key).id
            conn.execute("INSERT OR REPLACE INTO conflicts (content, output_path, reason, noted_at) "
                         "VALUES (?, ?, ?, ?)", (content, encode_path(output_path), safe_text(reason), self._now()))
