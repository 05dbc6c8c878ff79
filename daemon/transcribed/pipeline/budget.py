"""The audio budget: how many audio hours may be sent to Gladia per local day and per calendar month.

Periods follow the machine's local time (the TZ environment variable is respected): a day runs from local
midnight to local midnight, a month from the 1st to the 1st. A job counts in the period in which its create
request reserved its audio (ledger/spending.py does the atomic check). What a file costs is known before its
job is created: ffprobe or the WAV header before the upload, Gladia's upload answer after it; a file whose
duration cannot be known counts as Gladia's 135-minute limit until its job reports the real duration.

A file that does not fit waits (a ledger hold of kind "budget", with a reason `status` and `explain` show)
and goes when the next period starts: the pool's budget loop sleeps until the next boundary (no polling) and
lifts the holds when the period label changes.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from transcribed.config import BudgetConfig
from transcribed.ledger import BudgetRefused, Entry, Ledger, Spend, Usage

WORST_CASE_SECONDS = 135 * 60.0     # Gladia's longest audio per job (API.md): what an unknown duration counts
HOLD_KIND = "budget"


class BudgetWait(Exception):
    """The file does not fit the budget now: it waits, with this reason, for the next period."""


@dataclass(frozen=True)
class Periods:
    """The local day and month a moment falls in, and when each ends (epoch seconds)."""

    day: str          # "2026-12-07"
    month: str        # "2026-12"
    day_ends: float
    month_ends: float


def periods_at(now: float) -> Periods:
    """Given epoch seconds, return its local day and month and their ends (DST-safe: local midnights)."""
    local = time.localtime(now)
    today = date(local.tm_year, local.tm_mon, local.tm_mday)
    tomorrow = today + timedelta(days=1)
    first_next = date(today.year + (today.month == 12), today.month % 12 + 1, 1)
    return Periods(today.isoformat(), today.isoformat()[:7], _local_midnight(tomorrow), _local_midnight(first_next))


def _local_midnight(day: date) -> float:
    return time.mktime((day.year, day.month, day.day, 0, 0, 0, 0, 0, -1))


def hours(seconds: float, *, down: bool = False) -> str:
    """Seconds as hours for people: "0.3 h", "2 h", "0.05 h"; `down` rounds toward zero (what is left of a
    budget never reads as more than it is: 1.996 h left shows as "1.99 h", not "2 h")."""
    value = seconds / 3600.0
    digits = 1 if value >= 10 else 2 if value >= 0.01 or value == 0 else 4
    if down and math.isfinite(value):
        value = math.floor(value * 10**digits) / 10**digits
    text = f"{value:.{digits}f}"
    return f"{text.rstrip('0').rstrip('.')} h"


def refusal_reason(refused: BudgetRefused) -> str:
    """What `status` and `explain` say about a file that waits."""
    which = "tomorrow's" if refused.period == "day" else "next month's"
    setting = "daily_audio_hours" if refused.period == "day" else "monthly_audio_hours"
    if refused.seconds > refused.limit:
        return (f"waiting for a larger budget: it needs {hours(refused.seconds)}, more than the whole "
                f"{'daily' if refused.period == 'day' else 'monthly'} budget of {hours(refused.limit)} "
                f"(raise budget.{setting}, then reload)")
    return (f"waiting for {which} budget: {hours(refused.used)} used of {hours(refused.limit)} "
            f"({hours(refused.seconds)} needed)")


class Budget:
    """The budget in force (`limits`, replaced on reload) over the ledger's spending, on an injectable clock."""

    def __init__(self, limits: BudgetConfig, clock: Callable[[], float] = time.time) -> None:
        self.limits = limits
        self.clock = clock
        # Set when spending went down (a job reported less than was reserved, a reservation was released):
        # files waiting for the budget may fit now, so the holds are looked at again.
        self.freed = threading.Event()

    @property
    def limited(self) -> bool:
        return self.limits.daily_audio_hours > 0 or self.limits.monthly_audio_hours > 0

    def spend(self, seconds: float | None) -> Spend:
        """What a create request for `seconds` of audio (None: unknown, the worst case) reserves now."""
        now = periods_at(self.clock())
        estimated = seconds is None
        return Spend(seconds=WORST_CASE_SECONDS if seconds is None else max(0.0, seconds), estimated=estimated,
                     day=now.day, month=now.month, day_limit=self.limits.daily_audio_hours * 3600.0,
                     month_limit=self.limits.monthly_audio_hours * 3600.0)

    def check(self, usage: Callable[[str, str], Usage], seconds: float) -> None:
        """Before an upload: raise BudgetWait when `seconds` do not fit what the periods have left now
        (a hint that saves an upload; the reservation before the job is created is what decides)."""
        if not self.limited:
            return
        spend = self.spend(seconds)
        used = usage(spend.day, spend.month)
        for period, counted, limit in (("day", used.day, spend.day_limit), ("month", used.month, spend.month_limit)):
            if limit > 0 and counted + spend.seconds > limit + 1e-6:
                raise BudgetWait(refusal_reason(BudgetRefused(period, counted, limit, spend.seconds)))

    def seconds_to_boundary(self) -> float:
        """Seconds until the next period starts (the end of today, or of the month when that comes first)."""
        now = self.clock()
        found = periods_at(now)
        return max(0.0, min(found.day_ends, found.month_ends) - now)

    def labels(self) -> tuple[str, str]:
        found = periods_at(self.clock())
        return found.day, found.month

    def report(self, usage: Callable[[str, str], Usage]) -> dict[str, Any]:
        """Audio hours sent today, this month and in all, and what the budget leaves (None: no limit)."""
        found = periods_at(self.clock())
        used = usage(found.day, found.month)
        day_limit = self.limits.daily_audio_hours * 3600.0
        month_limit = self.limits.monthly_audio_hours * 3600.0
        report: dict[str, Any] = {
            "day": found.day, "month": found.month,
            "today_seconds": round(used.day, 3), "month_seconds": round(used.month, 3),
            "total_seconds": round(used.total + used.reserved, 3), "reserved_seconds": round(used.reserved, 3),
            "spent_seconds": round(used.total, 3),
            "jobs_created": used.jobs,
            "daily_limit_seconds": day_limit or None, "monthly_limit_seconds": month_limit or None,
            "today_left_seconds": round(max(0.0, day_limit - used.day), 3) if day_limit else None,
            "month_left_seconds": round(max(0.0, month_limit - used.month), 3) if month_limit else None,
            "day_ends": found.day_ends, "month_ends": found.month_ends,
        }
        for name in ("today", "month", "total", "today_left", "month_left"):   # the same in hours, for people
            seconds = report[f"{name}_seconds"]
            report[f"{name}_hours"] = None if seconds is None else round(seconds / 3600.0, 4)
        return report


def describe(report: dict[str, Any]) -> list[str]:
    """The `status` lines for a budget report."""
    def left(name: str, limit_name: str, period: str) -> str:
        if report[limit_name] is None:
            return f"no {period} limit"
        return f"{hours(report[name], down=True)} left of {hours(report[limit_name])} {period}"

    jobs = report["jobs_created"]
    return [f"audio sent: {hours(report['today_seconds'])} today, {hours(report['month_seconds'])} this month, "
            f"{hours(report['total_seconds'])} in all ({jobs} job{'' if jobs == 1 else 's'})",
            f"budget: {left('today_left_seconds', 'daily_limit_seconds', 'daily')}; "
            f"{left('month_left_seconds', 'monthly_limit_seconds', 'monthly')}"]


def reserve(budget: Budget | None, ledger: Ledger, entry: Entry, attempt_id: str, *, intent: bool) -> None:
    """Before a create request: record the intent (`intent`) or check an earlier one's reservation, reserving
    the entry's audio (its known duration, else the worst case) in the same transaction; raise BudgetWait
    when it does not fit. Without a budget (None) only the intent is recorded."""
    spend = budget.spend(entry.duration) if budget is not None else None
    try:
        if intent:
            ledger.mark_intent(entry.key, attempt_id, spend)
        elif spend is not None:
            ledger.reserve(entry.key, attempt_id, spend)
    except BudgetRefused as exc:
        raise BudgetWait(refusal_reason(exc)) from None


def reported_duration(body: Mapping[str, Any]) -> float | None:
    """The audio duration a finished job reports (result.metadata.audio_duration), or None."""
    result = body.get("result")
    metadata = result.get("metadata") if isinstance(result, dict) else None
    value = metadata.get("audio_duration") if isinstance(metadata, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0 else None
