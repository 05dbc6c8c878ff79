"""Audio spent at Gladia, reservations against the budget, and holds: the ledger's side of the budget.

Every create request reserves its audio seconds in the same transaction that records its intent
(`reserve_in`, called by `Ledger.mark_intent`): one `BEGIN IMMEDIATE` checks used + reserved + this <= the
limit of each period and writes the row, so workers (or processes) side by side cannot overshoot together.
A reservation becomes 'spent' when the job is recorded, 'released' when the job certainly was not created
(the intent is cleared without a job, or Gladia refused the request); `reconcile_spending` settles what a
crash left. Holds keep a content out of `pending()` with a reason until they are lifted.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from transcribed.ledger.errors import LedgerTransitionError
from transcribed.ledger.reads import LedgerReads
from transcribed.ledger.rows import safe_text

_COUNTED = "('reserved', 'spent')"
_MARGIN = 1e-6   # seconds: float sums must not refuse a reservation that fits exactly


@dataclass(frozen=True)
class Spend:
    """What a create request is about to send: its audio seconds (`estimated`: a worst case until Gladia
    reports the real duration), the local periods it counts in, and their limits in seconds (0: none)."""

    seconds: float
    estimated: bool
    day: str
    month: str
    day_limit: float = 0.0
    month_limit: float = 0.0


@dataclass(frozen=True)
class Usage:
    """Audio seconds counted in a day and a month (spent + reserved), and in all."""

    day: float
    month: float
    reserved: float        # of which still reserved (jobs being created)
    total: float           # spent, in all
    jobs: int              # jobs created, in all


class BudgetRefused(Exception):
    """A reservation that does not fit: `period` ("day" or "month") already counts `used` of `limit`
    seconds, and `seconds` more were asked for."""

    def __init__(self, period: str, used: float, limit: float, seconds: float) -> None:
        self.period = period
        self.used = used
        self.limit = limit
        self.seconds = seconds
        super().__init__(f"{period}: {used:.0f} s used of {limit:.0f} s, {seconds:.0f} s asked")


def counted(conn: sqlite3.Connection, column: str, label: str) -> float:
    """Seconds reserved or spent in the period `label` of `column` ("day" or "month")."""
    assert column in ("day", "month")
    row = conn.execute(f"SELECT COALESCE(SUM(seconds), 0) FROM spending WHERE {column} = ? "  # noqa: S608
                       f"AND state IN {_COUNTED}", (label,)).fetchone()
    return float(row[0])


def reserve_in(conn: sqlite3.Connection, content: int, attempt_id: str, spend: Spend, now: float) -> None:
    """Within the caller's write transaction: reserve `spend` for `attempt_id`, or raise BudgetRefused.

    Idempotent: an attempt already reserved or spent is left as it is (a re-post after a lookup).
    """
    known = conn.execute("SELECT state FROM spending WHERE attempt_id = ?", (attempt_id,)).fetchone()
    if known is not None and known[0] != "released":
        return
    for column, label, limit in (("day", spend.day, spend.day_limit), ("month", spend.month, spend.month_limit)):
        if limit > 0:
            used = counted(conn, column, label)
            if used + spend.seconds > limit + _MARGIN:
                raise BudgetRefused(column, used, limit, spend.seconds)
    conn.execute("INSERT OR REPLACE INTO spending (attempt_id, content, seconds, estimated, state, day, month, "
                 "reserved_at, updated_at) VALUES (?, ?, ?, ?, 'reserved', ?, ?, ?, ?)",
                 (attempt_id, content, spend.seconds, int(spend.estimated), spend.day, spend.month, now, now))


def spend_in(conn: sqlite3.Connection, attempt_id: str, now: float) -> None:
    """Within the caller's transaction: the job of `attempt_id` was created (its reservation is spent)."""
    conn.execute("UPDATE spending SET state = 'spent', updated_at = ? WHERE attempt_id = ?", (now, attempt_id))


def release_open_in(conn: sqlite3.Connection, content: int, now: float) -> None:
    """Within the caller's transaction, before it closes the content's intents: release what its open
    intents without a job reserved (those jobs were never created)."""
    conn.execute("UPDATE spending SET state = 'released', updated_at = ? WHERE state = 'reserved' AND attempt_id "
                 "IN (SELECT attempt_id FROM intents WHERE content = ? AND closed_at IS NULL AND job_id IS NULL)",
                 (now, content))


class LedgerSpending(LedgerReads):
    """Spending, reservations and holds (see the module docstring). Thread-safe."""

    def reserve(self, key: str, attempt_id: str, spend: Spend) -> None:
        """Reserve `spend` for an attempt already recorded (resumed after a restart or a `retry`), or raise
        BudgetRefused. Idempotent."""
        now = self._now()
        with self._writing() as conn:
            row = conn.execute("SELECT id FROM contents WHERE key = ?", (key,)).fetchone()
            if row is None:
                raise LedgerTransitionError(f"unknown content {key}")
            reserve_in(conn, int(row[0]), attempt_id, spend, now)

    def release(self, attempt_id: str) -> None:
        """Gladia certainly did not create the job of `attempt_id` (it refused the request): release what it
        reserved."""
        with self._writing() as conn:
            conn.execute("UPDATE spending SET state = 'released', updated_at = ? WHERE attempt_id = ? "
                         "AND state = 'reserved'", (self._now(), attempt_id))

    def correct_spending(self, key: str, seconds: float) -> None:
        """The job of `key`'s current attempt reported its real audio duration: count that instead."""
        with self._writing(data=False) as conn:
            conn.execute("UPDATE spending SET seconds = ?, estimated = 0, updated_at = ? WHERE attempt_id = "
                         "(SELECT attempt_id FROM contents WHERE key = ?) AND state <> 'released'",
                         (max(0.0, seconds), self._now(), key))

    def reconcile_spending(self) -> tuple[int, int]:
        """At start: settle reservations a crash left. A reservation whose intent got its job is spent; one
        whose intent was closed without a job, or is gone, is released; one whose intent is still open stays
        (the job may exist: the lookup by attempt id settles it). Return (spent, released)."""
        now = self._now()
        with self._writing(data=False) as conn:
            spent = conn.execute("UPDATE spending SET state = 'spent', updated_at = ? WHERE state = 'reserved' "
                                 "AND attempt_id IN (SELECT attempt_id FROM intents WHERE job_id IS NOT NULL)",
                                 (now,)).rowcount
            released = conn.execute("UPDATE spending SET state = 'released', updated_at = ? WHERE state = "
                                     "'reserved' AND attempt_id NOT IN (SELECT attempt_id FROM intents WHERE "
                                     "closed_at IS NULL)", (now,)).rowcount
        return int(spent), int(released)

    def usage(self, day: str, month: str) -> Usage:
        """Audio seconds counted (spent + reserved) in `day` and `month`, still reserved, and spent in all."""
        with self._reading() as conn:
            reserved, total, jobs = conn.execute(
                "SELECT COALESCE(SUM(CASE WHEN state = 'reserved' THEN seconds END), 0), "
                "COALESCE(SUM(CASE WHEN state = 'spent' THEN seconds END), 0), "
                "COUNT(CASE WHEN state = 'spent' THEN 1 END) FROM spending").fetchone()
            return Usage(counted(conn, "day", day), counted(conn, "month", month), float(reserved), float(total),
                         int(jobs))

    def hold(self, key: str, kind: str, reason: str) -> None:
        """Hold `key` back (not pending) with `reason` until `lift_holds(kind)` or its next transition."""
        with self._writing(data=False) as conn:
            conn.execute("INSERT OR REPLACE INTO holds (content, kind, reason, held_at) SELECT id, ?, ?, ? "
                         "FROM contents WHERE key = ?", (kind, safe_text(reason), self._now(), key))

    def lift_holds(self, kind: str) -> int:
        """Lift every hold of `kind`; return how many there were."""
        with self._writing(data=False) as conn:
            return int(conn.execute("DELETE FROM holds WHERE kind = ?", (kind,)).rowcount)

    def held(self, kind: str | None = None) -> dict[str, str]:
        """Held content keys (of `kind`, or all) -> the reason, oldest hold first."""
        with self._reading() as conn:
            rows = conn.execute("SELECT contents.key, holds.reason FROM holds JOIN contents ON contents.id = "
                                "holds.content WHERE ? IS NULL OR holds.kind = ? ORDER BY holds.held_at",
                                (kind, kind)).fetchall()
        return {str(key): str(reason) for key, reason in rows}

    def held_states(self, kind: str) -> dict[str, int]:
        """How many contents in each state are held back by `kind`."""
        with self._reading() as conn:
            rows = conn.execute("SELECT contents.state, COUNT(*) FROM holds JOIN contents ON contents.id = "
                                "holds.content WHERE holds.kind = ? GROUP BY contents.state", (kind,)).fetchall()
        return {str(state): int(count) for state, count in rows}

    def hold_of(self, key: str) -> str | None:
        """The reason `key` is held back, or None."""
        with self._reading() as conn:
            row = conn.execute("SELECT holds.reason FROM holds JOIN contents ON contents.id = holds.content "
                               "WHERE contents.key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])
