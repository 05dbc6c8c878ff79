"""Fixtures for end-to-end tests: an emulator on 127.0.0.1 that accepts only the canary key."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support import KEY, DaemonProcess

from transcribed.emulator import Emulator, EmulatorSettings


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    settings = EmulatorSettings(api_keys=frozenset({KEY}), processing_seconds=0.2, data_dir=tmp_path / "emulator")
    with Emulator(settings) as running:
        yield running


@pytest.fixture(autouse=True)
def no_daemon_left_running() -> Iterator[None]:
    """A test that fails half-way must not leave its daemon running (it would outlive the suite)."""
    yield
    while DaemonProcess.started:
        daemon = DaemonProcess.started.pop()
        if daemon.proc.poll() is None:
            daemon.kill()
