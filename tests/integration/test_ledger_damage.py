"""R3: damaged ledger files. Every kind of damage is detected on open, the damaged file is kept aside byte for
byte (never emptied, never opened over), and `rebuild=True` starts fresh while keeping every row that can
still be read, so finished work is never billed again."""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from transcribed.ledger import Ledger, LedgerDamagedError, LedgerError, LedgerVersionError

ENTRIES = 240
PAGE = 4096



def key_for(index: int) -> str:
    return f"sha256:{index:064x}"


def populate(path: Path) -> None:
    """A ledger of ENTRIES contents: most done (with jobs, results, outputs), some in flight or failed."""
    with Ledger.open(path, clock=lambda: 1_700_000_000.0) as ledger:
        for index in range(ENTRIES):
            key = key_for(index)
            ledger.record_seen(key, f"/inbox/talk number {index}.mp3", "/inbox", 1, index, 1000 + index, index)
            ledger.mark_uploading(key)
            ledger.mark_uploaded(key, f"https://api.gladia.io/file/{index}")
            ledger.mark_intent(key, f"attempt-{index}")
            ledger.mark_submitted(key, f"job-{index}", f"https://api.gladia.io/v2/pre-recorded/job-{index}")
            if index % 10 == 1:
                continue  # left in flight
            if index % 10 == 2:
                ledger.mark_failed(key, "503", retry_at=1_700_000_100.0)
                continue
            ledger.store_result(key, {"id": f"job-{index}", "text": f"transcript {index}"})
            ledger.mark_done(key, {f"/inbox/talk number {index}.txt": f"sha256:{index:x}"})
        ledger.set_meta("done_today", "7")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "ledger.sqlite3"
    populate(path)
    assert not Path(f"{path}-wal").exists()  # closed cleanly: everything is in the main file
    return path


@pytest.fixture
def ledger_path(tmp_path: Path, template: Path) -> Path:
    path = tmp_path / "state" / "ledger.sqlite3"
    path.parent.mkdir()
    shutil.copyfile(template, path)
    return path


def truncate_to(size: int) -> Callable[[bytes], bytes]:
    return lambda data: data[:size]  # a negative size cuts that many bytes off the end


def overwrite_page(number: int) -> Callable[[bytes], bytes]:
    def damage(data: bytes) -> bytes:
        start = number * PAGE
        noise = random.Random(number).randbytes(PAGE)
        return data[:start] + noise + data[start + PAGE:]
    return damage


DAMAGES: dict[str, Callable[[bytes], bytes]] = {
    "zero length": lambda data: b"",
    "truncated inside the header": truncate_to(60),
    "truncated after the first page": truncate_to(PAGE),
    "truncated to half": lambda data: data[: (len(data) // 2) // PAGE * PAGE],
    "truncated mid page": lambda data: data[: len(data) // 2 + 1000],
    "last page missing": truncate_to(-PAGE),
    "last bytes missing": truncate_to(-100),
    "garbage tail": lambda data: data + b"\x13garbage\x00" * 100,
    "garbage page appended": lambda data: data + random.Random(1).randbytes(PAGE),
    "random bytes": lambda data: random.Random(2).randbytes(len(data)),
    "not sqlite": lambda data: b"[ledger]\npath = '/var/lib/transcribed'\n" * 50,
    "a page overwritten": lambda data: overwrite_page(len(data) // PAGE // 2)(data),
    "the root page of the schema overwritten": lambda data: data[:100] + b"\xff" * (PAGE - 100) + data[PAGE:],
}


@pytest.mark.parametrize("damage", list(DAMAGES), ids=list(DAMAGES))
def test_damage_is_kept_aside_and_refused(ledger_path: Path, damage: str) -> None:
    damaged = DAMAGES[damage](ledger_path.read_bytes())
    ledger_path.write_bytes(damaged)
    with pytest.raises(LedgerDamagedError) as caught:
        Ledger.open(ledger_path, clock=lambda: 1_800_000_000.0)
    aside = caught.value.aside_path
    assert aside is not None and aside.name.startswith("ledger.sqlite3.damaged-20270115T")
    assert aside.read_bytes() == damaged  # kept exactly as found
    assert not ledger_path.exists()  # and nothing was started over it
    assert caught.value.problem in str(caught.value)


@pytest.mark.parametrize("damage", list(DAMAGES), ids=list(DAMAGES))
def test_rebuild_starts_fresh_and_keeps_what_reads(ledger_path: Path, damage: str) -> None:
    damaged = DAMAGES[damage](ledger_path.read_bytes())
    ledger_path.write_bytes(damaged)
    with Ledger.open(ledger_path, rebuild=True) as ledger:
        recovery = ledger.recovery
        assert recovery is not None and recovery.aside_path.read_bytes() == damaged
        assert ledger.get_meta("rebuilt_from") == str(recovery.aside_path)
        assert ledger.verify() == []
        kept = [entry for index in range(ENTRIES) if (entry := ledger.get(key_for(index))) is not None]
        assert len(kept) == recovery.salvaged["contents"]
        for entry in kept:  # what was salvaged is whole: finished work keeps its job, nothing is re-billed
            index = int(entry.key.removeprefix("sha256:"), 16)
            assert entry.job_id == f"job-{index}" and entry.job_attempts == 1
            if index % 10 not in (1, 2):
                assert entry.state == "done"
    with Ledger.open(ledger_path) as reopened:  # the rebuilt ledger is sound on the next start
        assert reopened.recovery is None


@pytest.mark.parametrize(("damage", "share"), [
    ("a page overwritten", 0.5), ("last page missing", 0.5), ("last bytes missing", 0.9),
    # A cut in the middle keeps the rows on the pages before it. Since schema 3 a content's rows fill more
    # pages (a spending row per job, each output's source), so fewer paths rows lie in the first half than
    # before: about a quarter of them, found by the row-by-row lookups when the scan stops at once.
    ("garbage tail", 1.0), ("garbage page appended", 1.0), ("truncated mid page", 0.2),
])
def test_rebuild_salvages_the_rows_that_read(ledger_path: Path, damage: str, share: float) -> None:
    ledger_path.write_bytes(DAMAGES[damage](ledger_path.read_bytes()))
    with Ledger.open(ledger_path, rebuild=True) as ledger:
        assert ledger.recovery is not None
        salvaged = ledger.recovery.salvaged
        assert salvaged["contents"] >= ENTRIES * share, salvaged
        assert salvaged["paths"] >= ENTRIES * share, salvaged
        assert ledger.counts()["done"] >= ledger.counts()["submitted"]
        if share == 1.0:
            assert salvaged["meta"] == 1 and ledger.get_meta("done_today") == "7"


def test_zero_length_with_write_ahead_log_data_is_damage(ledger_path: Path) -> None:
    with Ledger.open(ledger_path) as ledger:
        conn = sqlite3.connect(ledger_path)  # hold a reader so the log is not folded in and removed on close
        conn.execute("BEGIN")
        conn.execute("SELECT COUNT(*) FROM contents").fetchone()
        ledger.set_meta("written", "into the log")
        shutil.copyfile(f"{ledger_path}-wal", ledger_path.parent / "saved-wal")
        conn.close()
    ledger_path.write_bytes(b"")
    shutil.copyfile(ledger_path.parent / "saved-wal", f"{ledger_path}-wal")
    with pytest.raises(LedgerDamagedError) as caught:
        Ledger.open(ledger_path)
    assert caught.value.aside_path is not None
    assert Path(f"{caught.value.aside_path}-wal").stat().st_size > 32  # the log went aside with it


def test_missing_file_with_write_ahead_log_data_is_damage(ledger_path: Path) -> None:
    ledger_path.unlink()
    Path(f"{ledger_path}-wal").write_bytes(b"\x37\x7f\x06\x82" + os.urandom(5000))
    with pytest.raises(LedgerDamagedError):
        Ledger.open(ledger_path)
    assert not ledger_path.exists()


def test_another_application_database_is_not_used(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO photos (name) VALUES ('cat.jpg')")
    conn.commit()
    conn.close()
    original = path.read_bytes()
    with pytest.raises(LedgerDamagedError) as caught:
        Ledger.open(path)
    assert caught.value.aside_path is not None and caught.value.aside_path.read_bytes() == original


def test_newer_schema_is_refused_and_left_alone(ledger_path: Path) -> None:
    conn = sqlite3.connect(ledger_path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    before = ledger_path.read_bytes()
    with pytest.raises(LedgerVersionError):
        Ledger.open(ledger_path)
    with pytest.raises(LedgerVersionError):
        Ledger.open(ledger_path, read_only=True)
    assert ledger_path.read_bytes() == before
    assert not list(ledger_path.parent.glob("*.damaged-*"))


def test_read_only_open_reports_damage_without_moving_it(ledger_path: Path) -> None:
    damaged = DAMAGES["a page overwritten"](ledger_path.read_bytes())
    ledger_path.write_bytes(damaged)
    with pytest.raises(LedgerDamagedError) as caught:
        Ledger.open(ledger_path, read_only=True)
    assert caught.value.aside_path is None
    assert ledger_path.read_bytes() == damaged


def test_damaged_twice_in_the_same_second_keeps_both(ledger_path: Path) -> None:
    asides = []
    for _ in range(2):
        if not ledger_path.exists():
            Ledger.open(ledger_path, rebuild=True).close()  # the explicit way past a damaged one
        ledger_path.write_bytes(b"not a database at all, not even close" * 10)
        with pytest.raises(LedgerDamagedError) as caught:
            Ledger.open(ledger_path, clock=lambda: 1_800_000_000.0)
        asides.append(caught.value.aside_path)
    assert asides[0] != asides[1] and all(aside is not None and aside.exists() for aside in asides)


def test_an_unfinished_log_from_a_crash_is_replayed_not_damage(ledger_path: Path, tmp_path: Path) -> None:
    """What a kill -9 leaves (main file behind, frames in the -wal) is a sound ledger."""
    crashed = tmp_path / "crashed" / "ledger.sqlite3"
    crashed.parent.mkdir()
    with Ledger.open(ledger_path) as ledger:
        holder = sqlite3.connect(ledger_path)  # keeps the log from being folded in, like a crash would
        holder.execute("BEGIN")
        holder.execute("SELECT COUNT(*) FROM contents").fetchone()
        for index in range(1, ENTRIES, 10):
            ledger.mark_done(key_for(index), {})
        ledger.set_meta("last", "after the snapshot")
        for suffix in ("", "-wal"):
            shutil.copyfile(f"{ledger_path}{suffix}", f"{crashed}{suffix}")
        holder.close()
    assert Path(f"{crashed}-wal").stat().st_size > 32
    with Ledger.open(crashed) as recovered:
        assert recovered.recovery is None
        assert recovered.get_meta("last") == "after the snapshot"
        assert recovered.get(key_for(11)).state == "done"  # type: ignore[union-attr]
        assert recovered.verify() == []


def test_scratch_left_by_a_crash_during_creation_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    scratch = tmp_path / "ledger.sqlite3.new-12345"
    scratch.write_bytes(b"half")
    with Ledger.open(path) as ledger:
        assert ledger.counts()["done"] == 0
    assert not scratch.exists()


def test_unwritable_place_is_a_ledger_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(LedgerError) as caught:
        Ledger.open(blocker / "ledger.sqlite3")
    assert str(blocker) in str(caught.value)


def test_the_next_start_after_a_refusal_does_not_start_empty(ledger_path: Path) -> None:
    """A service manager restarts the daemon after it refused a damaged ledger: still refused."""
    ledger_path.write_bytes(DAMAGES["last page missing"](ledger_path.read_bytes()))
    with pytest.raises(LedgerDamagedError) as first:
        Ledger.open(ledger_path)
    assert not ledger_path.exists()
    with pytest.raises(LedgerDamagedError) as second:
        Ledger.open(ledger_path)
    assert second.value.aside_path == first.value.aside_path
    assert not ledger_path.exists()
    with Ledger.open(ledger_path, rebuild=True) as ledger:  # the explicit rebuild salvages from it
        assert ledger.recovery is not None and ledger.recovery.aside_path == first.value.aside_path
        assert ledger.recovery.salvaged["contents"] >= ENTRIES // 2
        assert ledger.get(key_for(0)).state == "done"  # type: ignore[union-attr]
    with Ledger.open(ledger_path) as reopened:  # and from then on it is the ledger
        assert reopened.recovery is None and reopened.counts()["done"] > 0
