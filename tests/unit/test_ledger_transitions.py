"""The ledger's state machine: every transition, the guards that prevent a second paid job, the queries the
pipeline and `status` rely on, and durability across close/reopen."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from transcribed.errors import TranscribedError
from transcribed.ledger import Ledger, LedgerError, LedgerTransitionError

KEY_A = "sha256:" + "a" * 64
KEY_B = "sha256:" + "b" * 64
KEY_C = "sha256:" + "c" * 64


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds



@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(tmp_path: Path, clock: Clock) -> Iterator[Ledger]:
    opened = Ledger.open(tmp_path / "state" / "ledger.sqlite3", clock=clock)
    yield opened
    opened.close()


def seen(ledger: Ledger, key: str = KEY_A, path: str = "/inbox/a.mp3", inode: int = 1) -> None:
    ledger.record_seen(key, path, "/inbox", 10, inode, 1000, 123_456_789)


def submitted(ledger: Ledger, key: str = KEY_A) -> None:
    seen(ledger, key, f"/inbox/{key[-4:]}.mp3")
    ledger.mark_uploading(key)
    ledger.mark_uploaded(key, "https://api.gladia.io/file/1", duration=61.5)
    ledger.mark_intent(key, f"attempt-{key[-4:]}")
    ledger.mark_submitted(key, f"job-{key[-4:]}", f"https://api.gladia.io/v2/pre-recorded/job-{key[-4:]}")


def test_record_seen_creates_discovered_once(ledger: Ledger, clock: Clock) -> None:
    entry, created = ledger.record_seen(KEY_A, "/inbox/a.mp3", "/inbox", 10, 1, 1000, 5)
    assert created
    assert (entry.key, entry.state, entry.size, entry.paths) == (KEY_A, "discovered", 1000, ("/inbox/a.mp3",))
    assert entry.created_at == entry.updated_at == clock.now
    assert (entry.job_attempts, entry.attempts, entry.outputs) == (0, 0, {})
    clock.advance(5)
    again, created_again = ledger.record_seen(KEY_A, "/inbox/copy.mp3", "/inbox", 10, 2, 1000, 6)
    assert not created_again
    assert again.paths == ("/inbox/copy.mp3", "/inbox/a.mp3")  # most recently seen first
    assert again.created_at == entry.created_at


def test_record_seen_same_path_new_content_moves_the_path(ledger: Ledger) -> None:
    seen(ledger, KEY_A, "/inbox/a.mp3")
    ledger.record_seen(KEY_B, "/inbox/a.mp3", "/inbox", 10, 1, 2000, 999)
    old, new = ledger.get(KEY_A), ledger.get(KEY_B)
    assert old is not None and new is not None
    assert old.paths == () and new.paths == ("/inbox/a.mp3",)
    entry = ledger.entry_for_path("/inbox/a.mp3")
    assert entry is not None and entry.key == KEY_B


def test_happy_path_to_done(ledger: Ledger, clock: Clock) -> None:
    seen(ledger)
    ledger.mark_uploading(KEY_A)
    assert ledger.get(KEY_A).state == "uploading"  # type: ignore[union-attr]
    clock.advance(1)
    ledger.mark_uploaded(KEY_A, "https://api.gladia.io/file/1", duration=61.5)
    entry = ledger.get(KEY_A)
    assert entry is not None
    assert (entry.state, entry.audio_url, entry.duration, entry.updated_at) == (
        "uploaded", "https://api.gladia.io/file/1", 61.5, clock.now)
    ledger.mark_intent(KEY_A, "attempt-1")
    entry = ledger.get(KEY_A)
    assert entry is not None
    assert (entry.state, entry.attempt_id, entry.job_attempts, entry.job_id) == ("uploaded", "attempt-1", 1, None)
    ledger.mark_submitted(KEY_A, "job-1", "https://api.gladia.io/v2/pre-recorded/job-1")
    entry = ledger.get(KEY_A)
    assert entry is not None
    assert (entry.state, entry.job_id, entry.result_url, entry.attempt_id) == (
        "submitted", "job-1", "https://api.gladia.io/v2/pre-recorded/job-1", "attempt-1")
    ledger.store_result(KEY_A, {"id": "job-1", "result": {"transcription": {"full_transcript": "héllo"}}})
    ledger.mark_done(KEY_A, {"/inbox/a.txt": "sha256:t", "/inbox/a.srt": "sha256:s"})
    entry = ledger.get(KEY_A)
    assert entry is not None
    assert entry.state == "done"
    assert dict(entry.outputs) == {"/inbox/a.srt": "sha256:s", "/inbox/a.txt": "sha256:t"}
    assert ledger.load_result(KEY_A) == {"id": "job-1", "result": {"transcription": {"full_transcript": "héllo"}}}
    assert ledger.output_owner("/inbox/a.srt") == KEY_A
    assert ledger.output_owner("/inbox/other.srt") is None
    assert ledger.pending() == []
    assert ledger.verify() == []


def test_mark_done_again_adds_outputs_for_a_copy(ledger: Ledger) -> None:
    submitted(ledger)
    ledger.mark_done(KEY_A, {"/inbox/a.txt": "h1"})
    ledger.mark_done(KEY_A, {"/inbox/copy.txt": "h2", "/inbox/a.txt": "h3"})
    entry = ledger.get(KEY_A)
    assert entry is not None and dict(entry.outputs) == {"/inbox/a.txt": "h3", "/inbox/copy.txt": "h2"}


def test_intent_guards_prevent_a_second_paid_job(ledger: Ledger) -> None:
    seen(ledger)
    with pytest.raises(LedgerTransitionError):
        ledger.mark_intent(KEY_A, "attempt-0")  # no audio URL yet
    ledger.mark_uploading(KEY_A)
    ledger.mark_uploaded(KEY_A, "https://u/1")
    ledger.mark_intent(KEY_A, "attempt-1")
    with pytest.raises(LedgerTransitionError):
        ledger.mark_intent(KEY_A, "attempt-2")  # attempt-1 unresolved
    ledger.mark_intent(KEY_A, "attempt-1")  # re-POST with the same id after a lookup found nothing
    assert ledger.get(KEY_A).job_attempts == 2  # type: ignore[union-attr]
    with pytest.raises(LedgerTransitionError):
        ledger.mark_uploading(KEY_A)  # would lose the unresolved intent
    ledger.mark_submitted(KEY_A, "job-1", "https://r/1")
    ledger.mark_submitted(KEY_A, "job-1", "https://r/1")  # idempotent
    with pytest.raises(LedgerTransitionError):
        ledger.mark_submitted(KEY_A, "job-2", "https://r/2")
    with pytest.raises(LedgerTransitionError):
        ledger.mark_intent(KEY_A, "attempt-1")  # a job exists
    entry = ledger.get(KEY_A)
    assert entry is not None and (entry.state, entry.job_id, entry.job_attempts) == ("submitted", "job-1", 2)


def test_submitted_requires_an_intent(ledger: Ledger) -> None:
    seen(ledger)
    ledger.mark_uploading(KEY_A)
    ledger.mark_uploaded(KEY_A, "https://u/1")
    with pytest.raises(LedgerTransitionError):
        ledger.mark_submitted(KEY_A, "job-1", "https://r/1")
    assert ledger.get(KEY_A).state == "uploaded"  # type: ignore[union-attr]


def test_done_refuses_new_uploads_and_jobs(ledger: Ledger) -> None:
    submitted(ledger)
    ledger.mark_done(KEY_A, {})
    for action in (lambda: ledger.mark_uploading(KEY_A), lambda: ledger.mark_uploaded(KEY_A, "u"),
                   lambda: ledger.mark_intent(KEY_A, "x"), lambda: ledger.clear_job(KEY_A, keep_upload=True),
                   lambda: ledger.reset_for_retry(KEY_A)):
        with pytest.raises(LedgerTransitionError):
            action()
    assert ledger.get(KEY_A).state == "done"  # type: ignore[union-attr]


def test_unknown_key_is_refused(ledger: Ledger) -> None:
    with pytest.raises(LedgerTransitionError) as caught:
        ledger.mark_uploading(KEY_C)
    assert isinstance(caught.value, LedgerError) and isinstance(caught.value, TranscribedError)
    assert ledger.get(KEY_C) is None and ledger.entry_for_path("/nowhere") is None


def test_clear_job_keeps_or_drops_the_upload(ledger: Ledger) -> None:
    submitted(ledger, KEY_A)
    ledger.clear_job(KEY_A, keep_upload=True)
    entry = ledger.get(KEY_A)
    assert entry is not None
    assert (entry.state, entry.job_id, entry.attempt_id, entry.result_url, entry.audio_url) == (
        "uploaded", None, None, None, "https://api.gladia.io/file/1")
    ledger.mark_intent(KEY_A, "attempt-2")  # a new job may now be created
    assert ledger.get(KEY_A).job_attempts == 2  # type: ignore[union-attr]
    ledger.clear_job(KEY_A, keep_upload=False)
    entry = ledger.get(KEY_A)
    assert entry is not None and (entry.state, entry.audio_url, entry.duration) == ("discovered", None, 61.5)
    ledger.mark_uploading(KEY_A)


def test_failed_transient_is_due_at_its_retry_time(ledger: Ledger, clock: Clock) -> None:
    submitted(ledger)
    ledger.mark_failed(KEY_A, "GET /v2/pre-recorded/job -> 503", retry_at=clock.now + 30)
    entry = ledger.get(KEY_A)
    assert entry is not None
    assert (entry.state, entry.reason, entry.attempts, entry.next_retry_at, entry.job_id) == (
        "failed", "GET /v2/pre-recorded/job -> 503", 1, clock.now + 30, "job-aaaa")
    assert ledger.pending() == [] and ledger.next_due() == clock.now + 30
    assert [e.key for e in ledger.pending(now=clock.now + 30)] == [KEY_A]
    clock.advance(31)
    assert [e.key for e in ledger.pending()] == [KEY_A]
    ledger.mark_failed(KEY_A, "again", retry_at=clock.now + 60)
    assert ledger.get(KEY_A).attempts == 2  # type: ignore[union-attr]
    ledger.mark_done(KEY_A, {"/o.txt": "h"})
    entry = ledger.get(KEY_A)
    assert entry is not None and (entry.attempts, entry.reason, entry.last_error) == (0, None, "again")


def test_failed_permanent_waits_for_retry(ledger: Ledger, clock: Clock) -> None:
    seen(ledger)
    ledger.mark_uploading(KEY_A)
    ledger.mark_failed(KEY_A, "413 file too large", retry_at=None)
    assert ledger.pending(now=clock.now + 10**9) == [] and ledger.next_due() is None
    assert [e.key for e in ledger.failures()] == [KEY_A]
    ledger.reset_for_retry(KEY_A)
    entry = ledger.get(KEY_A)
    assert entry is not None and (entry.state, entry.attempts, entry.reason) == ("discovered", 0, None)
    with pytest.raises(LedgerTransitionError):
        ledger.reset_for_retry(KEY_A)  # not failed any more


def test_reset_for_retry_resumes_from_the_last_durable_step(ledger: Ledger) -> None:
    submitted(ledger, KEY_A)
    ledger.mark_failed(KEY_A, "poll timed out", retry_at=None)
    ledger.reset_for_retry(KEY_A)
    entry = ledger.get(KEY_A)
    assert entry is not None and (entry.state, entry.job_id) == ("submitted", "job-aaaa")  # polls, no new job
    seen(ledger, KEY_B, "/inbox/b.mp3", inode=2)
    ledger.mark_uploading(KEY_B)
    ledger.mark_uploaded(KEY_B, "https://u/b")
    ledger.mark_skipped(KEY_B, "too long for the plan")
    assert ledger.get(KEY_B).reason == "too long for the plan"  # type: ignore[union-attr]
    ledger.reset_for_retry(KEY_B)
    assert ledger.get(KEY_B).state == "uploaded"  # type: ignore[union-attr]


def test_pending_order_and_queries(ledger: Ledger, clock: Clock) -> None:
    for index, key in enumerate((KEY_C, KEY_A, KEY_B)):
        seen(ledger, key, f"/inbox/{index}.mp3", inode=index)
        clock.advance(1)
    ledger.mark_uploading(KEY_A)
    ledger.mark_skipped(KEY_B, "not media")
    assert [e.key for e in ledger.pending()] == [KEY_C, KEY_A]  # oldest first
    assert [e.key for e in ledger.in_flight()] == [KEY_A]
    assert ledger.counts() == {"discovered": 1, "uploading": 1, "uploaded": 0, "submitted": 0, "done": 0,
                               "failed": 0, "skipped": 1}
    for key in (KEY_C, KEY_A):
        clock.advance(1)
        ledger.mark_failed(key, f"boom {key[-1]}", retry_at=None)
    assert [e.key for e in ledger.failures()] == [KEY_A, KEY_C]  # most recent first
    assert [e.key for e in ledger.failures(limit=1)] == [KEY_A]


def test_meta_and_conflicts(ledger: Ledger, clock: Clock) -> None:
    assert ledger.get_meta("paused_reason") is None
    ledger.set_meta("paused_reason", "401: bad key")
    ledger.set_meta("paused_reason", "resumed")
    assert ledger.get_meta("paused_reason") == "resumed"
    seen(ledger)
    ledger.note_conflict(KEY_A, "/inbox/a.txt", "a file we did not write is there")
    clock.advance(1)
    ledger.note_conflict(KEY_A, "/inbox/a.srt", "symlink at the output path")
    assert ledger.conflicts(KEY_A) == [("/inbox/a.txt", "a file we did not write is there"),
                                       ("/inbox/a.srt", "symlink at the output path")]
    assert ledger.conflicts(KEY_B) == []


def test_forget_path(ledger: Ledger) -> None:
    seen(ledger, KEY_A, "/inbox/a.mp3")
    seen(ledger, KEY_A, "/inbox/copy.mp3", inode=2)
    assert ledger.forget_path("/inbox/a.mp3")
    assert not ledger.forget_path("/inbox/a.mp3")
    assert ledger.get(KEY_A).paths == ("/inbox/copy.mp3",)  # type: ignore[union-attr]
    ledger.mark_uploading(KEY_A)
    ledger.mark_uploaded(KEY_A, "https://u/1")
    ledger.mark_done(KEY_A, {"/inbox/copy.txt": "h"})
    assert ledger.forget_path("/inbox/copy.mp3")
    assert ledger.get(KEY_A) is None  # seen again, it is new work
    assert ledger.output_owner("/inbox/copy.txt") == KEY_A  # but we still know we wrote that file


def test_forget_keeps_content_that_holds_a_job(ledger: Ledger) -> None:
    submitted(ledger, KEY_A)
    assert ledger.forget_path("/inbox/aaaa.mp3")
    entry = ledger.get(KEY_A)
    assert entry is not None and entry.paths == () and entry.job_id == "job-aaaa"


def test_adopt_done_from_outputs_on_disk(ledger: Ledger) -> None:
    entry = ledger.adopt_done(KEY_A, "/inbox/a.mp3", {"/inbox/a.txt": "h"}, root="/inbox")
    assert (entry.state, entry.paths, dict(entry.outputs), entry.size) == (
        "done", ("/inbox/a.mp3",), {"/inbox/a.txt": "h"}, 0)
    assert ledger.lookup_stat("/inbox/a.mp3", 10, 1, 1000, 123_456_789) is None  # no stat known yet
    again, created = ledger.record_seen(KEY_A, "/inbox/a.mp3", "/inbox", 10, 1, 1000, 123_456_789)
    assert not created and again.state == "done" and again.size == 1000
    assert ledger.lookup_stat("/inbox/a.mp3", 10, 1, 1000, 123_456_789) == KEY_A


def test_hostile_names_round_trip(ledger: Ledger) -> None:
    undecodable = b"/inbox/\xff\xfe-line\nbreak \xe2\x80\xae.mp3".decode("utf-8", "surrogateescape")
    ledger.record_seen(KEY_A, undecodable, "/inbox", 10, 7, 1000, 1)
    assert ledger.lookup_stat(undecodable, 10, 7, 1000, 1) == KEY_A
    assert ledger.get(KEY_A).paths == (undecodable,)  # type: ignore[union-attr]
    ledger.mark_failed(KEY_A, "cannot decode " + undecodable, retry_at=None)
    assert "\\udcff" in (ledger.get(KEY_A).reason or "")  # type: ignore[union-attr]


def test_durable_across_close_and_reopen(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "ledger.sqlite3"
    with Ledger.open(path, clock=clock) as first:
        submitted(first, KEY_A)
        first.store_result(KEY_A, {"x": 1})
        seen(first, KEY_B, "/inbox/b.mp3", inode=2)
        first.mark_failed(KEY_B, "503", retry_at=clock.now + 100)
        first.set_meta("done_today", "3")
        before = (first.get(KEY_A), first.get(KEY_B))
    with Ledger.open(path, clock=clock) as second:
        assert (second.get(KEY_A), second.get(KEY_B)) == before
        assert second.next_due() == clock.now + 100  # the retry schedule survives a restart
        assert second.load_result(KEY_A) == {"x": 1}
        assert second.get_meta("done_today") == "3"
        assert second.recovery is None


def test_closed_and_read_only_refuse(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    writer = Ledger.open(path)
    seen(writer)
    reader = Ledger.open(path, read_only=True)
    try:
        assert reader.get(KEY_A) is not None
        with pytest.raises(LedgerError):
            reader.mark_uploading(KEY_A)
        writer.mark_uploading(KEY_A)  # the daemon writes while `status` reads
        assert reader.get(KEY_A).state == "uploading"  # type: ignore[union-attr]
    finally:
        reader.close()
        writer.close()
    writer.close()
    with pytest.raises(LedgerError):
        writer.get(KEY_A)


def test_read_only_open_of_a_missing_ledger(tmp_path: Path) -> None:
    with pytest.raises(LedgerError):
        Ledger.open(tmp_path / "absent.sqlite3", read_only=True)
    assert not (tmp_path / "absent.sqlite3").exists()


def test_fail_job_forgets_the_dead_job_so_retry_creates_a_new_one(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from transcribed.ledger import Ledger

    with Ledger.open(tmp_path / "l.db") as ledger:
        ledger.record_seen("sha256:" + "a" * 64, "/in/a.wav", "/in", 1, 2, 3, 4)
        key = "sha256:" + "a" * 64
        ledger.mark_uploading(key)
        ledger.mark_uploaded(key, "https://x/file/1")
        ledger.mark_intent(key, "attempt-1")
        ledger.mark_submitted(key, "job-1", "https://x/v2/pre-recorded/job-1")
        ledger.fail_job(key, "Gladia job job-1 ended in error (error_code 500)")
        entry = ledger.get(key)
        assert entry is not None and entry.state == "failed" and entry.next_retry_at is None
        assert entry.job_id is None and entry.attempt_id is None and entry.audio_url == "https://x/file/1"
        ledger.reset_for_retry(key)
        entry = ledger.get(key)
        assert entry is not None and entry.state == "uploaded"
