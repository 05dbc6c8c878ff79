"""The audio budget: atomic reservations in the ledger, spent/released/reconciled, holds, periods in local
time, and what a waiting file says."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from transcribed.config import BudgetConfig
from transcribed.ledger import BudgetRefused, Ledger, Spend
from transcribed.pipeline.budget import WORST_CASE_SECONDS, Budget, BudgetWait, hours, periods_at, refusal_reason

DAY, MONTH = "2026-12-07", "2026-12"


def key(number: int) -> str:
    return "sha256:" + f"{number:064x}"


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    opened = Ledger.open(tmp_path / "ledger.sqlite3")
    yield opened
    opened.close()


def uploaded(ledger: Ledger, number: int, duration: float | None = 60.0) -> str:
    content = key(number)
    ledger.record_seen(content, f"/inbox/{number}.wav", "/inbox", 1, number, 10, 1)
    ledger.mark_uploading(content)
    ledger.mark_uploaded(content, f"https://gladia.example/file/{number}", duration)
    return content


def spend(seconds: float, day_limit: float = 0.0, month_limit: float = 0.0, day: str = DAY) -> Spend:
    return Spend(seconds, False, day, day[:7], day_limit, month_limit)


def test_a_reservation_that_does_not_fit_writes_nothing_and_says_why(ledger: Ledger) -> None:
    first, second = uploaded(ledger, 1), uploaded(ledger, 2)
    ledger.mark_intent(first, "attempt-1", spend(100.0, day_limit=150.0))
    with pytest.raises(BudgetRefused) as refused:
        ledger.mark_intent(second, "attempt-2", spend(60.0, day_limit=150.0))
    assert (refused.value.period, refused.value.used, refused.value.limit) == ("day", 100.0, 150.0)
    entry = ledger.get(second)
    assert entry is not None and entry.attempt_id is None and entry.job_attempts == 0   # rolled back
    assert ledger.usage(DAY, MONTH).day == 100.0


def test_the_monthly_limit_counts_every_day_of_the_month(ledger: Ledger) -> None:
    ledger.mark_intent(uploaded(ledger, 1), "a1", spend(100.0, month_limit=150.0, day="2026-12-01"))
    with pytest.raises(BudgetRefused) as refused:
        ledger.mark_intent(uploaded(ledger, 2), "a2", spend(60.0, month_limit=150.0, day="2026-12-20"))
    assert refused.value.period == "month"
    ledger.mark_intent(uploaded(ledger, 3), "a3", spend(60.0, month_limit=150.0, day="2027-01-01"))


def test_spent_released_and_reserved_again(ledger: Ledger) -> None:
    first, second = uploaded(ledger, 1), uploaded(ledger, 2)
    ledger.mark_intent(first, "a1", spend(100.0, day_limit=150.0))
    ledger.mark_submitted(first, "job-1", "https://gladia.example/v2/pre-recorded/job-1")
    ledger.mark_intent(second, "a2", spend(50.0, day_limit=150.0))
    usage = ledger.usage(DAY, MONTH)
    assert (usage.day, usage.reserved, usage.total, usage.jobs) == (150.0, 50.0, 100.0, 1)
    ledger.clear_job(second, keep_upload=True)          # the job was never created: its audio is free again
    assert ledger.usage(DAY, MONTH).day == 100.0
    ledger.mark_intent(second, "a3", spend(50.0, day_limit=150.0))
    ledger.release("a3")                                # Gladia refused the request
    assert ledger.usage(DAY, MONTH).day == 100.0
    ledger.reserve(second, "a3", spend(50.0, day_limit=150.0))   # `retry` resumes the same attempt
    assert ledger.usage(DAY, MONTH).day == 150.0
    ledger.reserve(second, "a3", spend(50.0, day_limit=150.0))   # idempotent
    assert ledger.usage(DAY, MONTH).day == 150.0


def test_the_real_duration_replaces_the_worst_case(ledger: Ledger) -> None:
    content = uploaded(ledger, 1, duration=None)
    budget = Budget(BudgetConfig(daily_audio_hours=3.0))
    reserved = budget.spend(None)
    assert (reserved.seconds, reserved.estimated) == (WORST_CASE_SECONDS, True)
    ledger.mark_intent(content, "a1", reserved)
    ledger.mark_submitted(content, "job-1", "https://gladia.example/v2/pre-recorded/job-1")
    ledger.correct_spending(content, 42.5)
    assert ledger.usage(reserved.day, reserved.month).total == 42.5


def test_reconcile_settles_what_a_crash_left(ledger: Ledger, tmp_path: Path) -> None:
    created, never, open_intent = uploaded(ledger, 1), uploaded(ledger, 2), uploaded(ledger, 3)
    for number, content in enumerate((created, never, open_intent)):
        ledger.mark_intent(content, f"a{number}", spend(10.0))
    conn = sqlite3.connect(tmp_path / "ledger.sqlite3")
    with conn:   # what a crash can leave: the intent resolved by hand, the reservation not
        conn.execute("UPDATE intents SET job_id = 'job-x' WHERE attempt_id = 'a0'")
        conn.execute("UPDATE intents SET closed_at = 1 WHERE attempt_id = 'a1'")
    conn.close()
    assert ledger.reconcile_spending() == (1, 1)
    usage = ledger.usage(DAY, MONTH)
    assert (usage.jobs, usage.reserved) == (1, 10.0)    # the open intent may still have made a job


def test_reservations_from_many_threads_and_two_connections_never_overshoot(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    ledgers = [Ledger.open(path), Ledger.open(path)]
    contents = [uploaded(ledgers[0], number) for number in range(40)]
    granted: list[str] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        content = contents[index]
        try:
            ledgers[index % 2].mark_intent(content, f"a{index}", spend(70.0, day_limit=1000.0))
        except BudgetRefused:
            return
        with lock:
            granted.append(content)

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 14                     # 14 x 70 s = 980 s <= 1000 s < 15 x 70 s
    assert ledgers[1].usage(DAY, MONTH).day == 980.0
    for opened in ledgers:
        opened.close()


def test_holds_keep_a_content_out_of_pending_until_lifted_or_moved(ledger: Ledger) -> None:
    first, second = uploaded(ledger, 1), uploaded(ledger, 2)
    ledger.hold(first, "budget", "waiting for tomorrow's budget: 2 h used of 2 h")
    ledger.hold(second, "budget", "waiting")
    assert [e.key for e in ledger.pending()] == []
    assert ledger.hold_of(first) == "waiting for tomorrow's budget: 2 h used of 2 h"
    assert ledger.held_states("budget") == {"uploaded": 2}
    ledger.mark_failed(second, "boom", retry_at=0.0)    # any transition lifts the hold
    assert [e.key for e in ledger.pending(now=1.0)] == [second]
    assert ledger.lift_holds("budget") == 1
    assert {e.key for e in ledger.pending(now=1.0)} == {first, second}


def test_a_version_1_ledger_counts_its_jobs_as_spent(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    with Ledger.open(path) as ledger:
        content = uploaded(ledger, 1, duration=90.0)
        ledger.mark_intent(content, "a1")
        ledger.mark_submitted(content, "job-1", "https://gladia.example/v2/pre-recorded/job-1")
    conn = sqlite3.connect(path)
    conn.executescript("DROP TABLE spending; DROP TABLE holds; DROP INDEX outputs_by_source;"
                       "ALTER TABLE outputs DROP COLUMN source; PRAGMA user_version = 1;")
    conn.close()
    with Ledger.open(path) as ledger:
        found = periods_at(time.time())
        usage = ledger.usage(found.day, found.month)
        assert (usage.jobs, usage.total, usage.day) == (1, 90.0, 90.0)


@pytest.fixture
def paris() -> Iterator[None]:
    before = os.environ.get("TZ")
    os.environ["TZ"] = "CET-1CEST,M3.5.0,M10.5.0/3"     # Paris' rules as a POSIX TZ: no tz database needed
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def test_periods_follow_local_time(paris: None) -> None:
    # 2026-12-31 23:30 in Paris is 22:30 UTC: still the 31st and December there.
    moment = 1798756200.0
    found = periods_at(moment)
    assert (found.day, found.month) == ("2026-12-31", "2026-12")
    assert found.day_ends == found.month_ends == moment + 1800
    # Across the spring DST change (2027-03-28 is 23 hours long in Paris).
    spring = periods_at(time.mktime((2027, 3, 28, 12, 0, 0, 0, 0, -1)))
    assert spring.day_ends - time.mktime((2027, 3, 28, 0, 0, 0, 0, 0, -1)) == 23 * 3600


def test_check_before_upload_and_what_a_waiting_file_says(ledger: Ledger) -> None:
    budget = Budget(BudgetConfig(daily_audio_hours=2.0))
    now = periods_at(time.time())
    ledger.mark_intent(uploaded(ledger, 1), "a1", Spend(1080.0, False, now.day, now.month, 7200.0, 0.0))
    budget.check(ledger.usage, 6000.0)
    with pytest.raises(BudgetWait) as waiting:
        budget.check(ledger.usage, 6200.0)
    assert str(waiting.value).startswith("waiting for tomorrow's budget: 0.3 h used of 2 h")
    assert refusal_reason(BudgetRefused("month", 36000.0, 36000.0, 60.0)).startswith(
        "waiting for next month's budget: 10 h used of 10 h")
    assert "more than the whole daily budget" in refusal_reason(BudgetRefused("day", 0.0, 3600.0, 7200.0))
    assert (hours(0), hours(180), hours(5400), hours(45000)) == ("0 h", "0.05 h", "1.5 h", "12.5 h")
    assert (hours(7187), hours(7187, down=True), hours(35990, down=True)) == ("2 h", "1.99 h", "9.99 h")
