"""The refused-key check against the emulator over real HTTP (issue 12, part 1): client.check_key's verdicts
and the KeyCheck loop's pause, recorded in a real ledger, lifted when the emulator accepts the key again."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from transcribed.emulator import Emulator, EmulatorSettings
from transcribed.gladia.client import GladiaClient
from transcribed.ledger import Ledger
from transcribed.pipeline.keycheck import KeyCheck, read_pause

KEY = "sk_key_check_" + "a" * 16


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    with Emulator(EmulatorSettings(api_keys=frozenset({KEY}), data_dir=tmp_path / "emulator")) as running:
        yield running


def test_check_key_tells_accepted_refused_and_no_answer_apart(emulator: Emulator) -> None:
    with GladiaClient(emulator.base_url, KEY) as client:
        assert client.check_key() is True
        emulator.set_faults(server_error_next={"GET /v2/pre-recorded": 1})
        assert client.check_key() is None
        emulator.set_api_keys(frozenset({"sk_another"}))
        assert client.check_key() is False
    assert emulator.counters()["GET /v2/pre-recorded"] == 3        # one request each, never retried


def test_the_pause_is_recorded_checked_and_lifted_when_the_key_is_accepted_again(tmp_path: Path,
                                                                                  emulator: Emulator) -> None:
    emulator.set_api_keys(frozenset({"sk_another"}))
    stop = threading.Event()
    accepted = threading.Event()
    with Ledger.open(tmp_path / "ledger.sqlite3") as ledger, GladiaClient(emulator.base_url, KEY) as client:
        keys = KeyCheck(lambda: client, ledger, stop, first=lambda: 0.05, on_accepted=accepted.set,
                        clock=time.time)
        loop = threading.Thread(target=keys.run)
        loop.start()
        try:
            assert keys.refused() is True
            assert keys.refused() is False                     # one pause, said once, whatever the workers
            pause = read_pause(ledger)
            assert pause is not None and pause.reason == "key_refused" and pause.since <= pause.next_check
            deadline = time.monotonic() + 30
            while emulator.counters().get("GET /v2/pre-recorded", 0) < 2 and time.monotonic() < deadline:
                stop.wait(0.02)
            assert not accepted.is_set()
            later = read_pause(ledger)
            assert later is not None and later.since == pause.since and later.next_check > pause.next_check
            emulator.set_api_keys(frozenset({KEY}))
            assert accepted.wait(30)
            assert keys.pause is None and read_pause(ledger) is None
        finally:
            stop.set()
            keys.wake()
            loop.join(10)
