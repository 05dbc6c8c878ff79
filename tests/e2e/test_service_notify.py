"""Run as a service: sd_notify over a local NOTIFY_SOCKET, SIGHUP reload, watchdog, stop (issue #6)."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import DaemonProcess, make_wav, run_cli, wait_until, write_config

from transcribed.emulator import Emulator


class NotifySocket:
    """A unix datagram socket standing in for systemd's: collects every message the daemon sends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(65536).decode())
            except TimeoutError:
                return self.messages

    def seen(self, prefix: str) -> list[str]:
        return [m for m in self.drain() if m.startswith(prefix)]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    listener = NotifySocket(tmp_path / "notify.sock")
    yield listener
    listener.close()


def test_ready_status_reload_stopping_in_order(tmp_path: Path, emulator: Emulator, notify: NotifySocket) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = write_config(tmp_path / "config.toml", emulator.base_url, inbox, tmp_path / "ledger.db")
    daemon = DaemonProcess(config, tmp_path / "run.log", NOTIFY_SOCKET=str(notify.path))
    wait_until(lambda: notify.seen("READY=1"), message="READY=1")
    assert daemon.saw("watch_started")          # READY comes once the inbox is watched
    talk = make_wav(inbox / "talk.wav")
    wait_until(lambda: talk.with_suffix(".txt").exists(), message="a transcript")
    wait_until(lambda: any("1 done today" in m for m in notify.seen("STATUS=")), message="STATUS with the count")

    # A good reload: RELOADING=1 (with MONOTONIC_USEC), then READY=1 again.
    config.write_text(config.read_text().replace('level = "debug"', 'level = "info"'))
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: daemon.saw("config_reloaded"), message="config_reloaded")
    reloading = notify.seen("RELOADING=1")
    assert reloading and "MONOTONIC_USEC=" in reloading[0]

    # A bad config is refused with its reason and the old one stays: the daemon keeps working.
    config.write_text(config.read_text() + "\n[workers]\nconcurrency = 0\n")
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: daemon.saw("reload_refused"), message="reload_refused")
    refused = next(e for e in daemon.events() if e.get("event") == "reload_refused")
    assert any("workers.concurrency" in p for p in refused["problems"])
    second = make_wav(inbox / "second.wav", tone=600)
    wait_until(lambda: second.with_suffix(".txt").exists(), message="work goes on under the old config")

    started = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - started < 12
    kinds = [m.split("=", 1)[0] for m in notify.drain()]
    assert kinds[0] == "READY" and kinds[-1] == "STOPPING"
    assert kinds.index("RELOADING") > kinds.index("STATUS") > 0


def test_watchdog_pings_stop_when_the_main_loop_hangs(tmp_path: Path, emulator: Emulator,
                                                       notify: NotifySocket) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = write_config(tmp_path / "config.toml", emulator.base_url, inbox, tmp_path / "ledger.db")
    daemon = DaemonProcess(config, tmp_path / "run.log", NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC="400000",
                           TRANSCRIBED_TEST_HANG_MAIN_LOOP_AFTER="2")
    wait_until(lambda: len(notify.seen("WATCHDOG=1")) >= 3, message="watchdog pings")
    time.sleep(2.5)      # past the hang point: a hung loop is recognised by silence over time
    count = len(notify.seen("WATCHDOG=1"))
    time.sleep(1.5)      # several watchdog intervals of silence
    assert len(notify.seen("WATCHDOG=1")) == count
    assert daemon.stop() == 0


def test_status_says_whether_the_daemon_runs(tmp_path: Path, emulator: Emulator) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = write_config(tmp_path / "config.toml", emulator.base_url, inbox, tmp_path / "ledger.db")
    daemon = DaemonProcess(config, tmp_path / "run.log")
    wait_until(lambda: daemon.saw("watch_started"), message="watching")
    running = run_cli("status", "--config", str(config))
    assert f"running (pid {daemon.proc.pid})" in running.stdout
    second = run_cli("run", "--config", str(config), timeout=30)
    assert second.returncode == 1 and "already running" in second.stderr
    assert daemon.stop() == 0
    assert "not running" in run_cli("status", "--config", str(config)).stdout
