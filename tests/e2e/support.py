"""Helpers for end-to-end tests: the installed `transcribed` command as a subprocess, real signals,
an in-process emulator over real HTTP on 127.0.0.1, WAV fixtures made with the stdlib."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

TRANSCRIBED = str(Path(sys.executable).with_name("transcribed"))
KEY = "sk_e2e_canary_" + os.urandom(8).hex()


def free_port() -> int:
    """A loopback port for a daemon to listen on, free now and below the kernel's ephemeral range: a port the
    kernel picked (bind to 0) could be handed to a client connection of the test before the daemon binds it."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(200):
        port = random.randrange(10000, max(10001, low))
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port below the ephemeral range")


def wait_until(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.05,
               message: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


def make_wav(path: Path, seconds: float = 2.0, tone: float = 440.0, rate: int = 8000) -> Path:
    """Write a small mono 16-bit WAV of a tone (distinct tones give distinct content)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = int(seconds * rate)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * tone * i / rate)))
                                 for i in range(frames)))
    return path


def write_config(path: Path, base_url: str, inbox: Path, ledger: Path, **sections: dict[str, Any]) -> Path:
    import tomli_w

    table: dict[str, Any] = {
        "gladia": {"base_url": base_url, "poll_initial_seconds": 0.1, "poll_max_seconds": 0.5,
                   "max_attempts": 8, "retry_deadline_seconds": 60.0},
        "inbox": {"paths": [str(inbox)], "settle_seconds": 0.3, "rescan_seconds": 5.0,
                  "polling_interval_seconds": 0.3},
        "ledger": {"path": str(ledger)},
        "log": {"format": "json", "level": "debug"},
    }
    for name, values in sections.items():
        table.setdefault(name, {}).update(values)
    path.write_text(tomli_w.dumps(table))
    path.chmod(0o600)
    return path


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GLADIA", "TRANSCRIBED", "NOTIFY_SOCKET",
                                                                      "WATCHDOG"))}
    base["GLADIA_API_KEY"] = KEY
    base.update(extra)
    return base


def run_cli(*args: str, timeout: float = 120.0, **extra_env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TRANSCRIBED, *args], capture_output=True, text=True, timeout=timeout,
                          env=env(**extra_env), check=False)


class DaemonProcess:
    """`transcribed run` (or `once`) as a subprocess; its JSON log lines collected from stdout."""

    started: list[DaemonProcess] = []   # the e2e conftest kills any still running after each test

    def __init__(self, config: Path, log_path: Path, *args: str, command: str = "run", **extra_env: str) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([TRANSCRIBED, command, "--config", str(config), *args], stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env(**extra_env))
        DaemonProcess.started.append(self)

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_bytes().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def saw(self, event: str) -> bool:
        return any(e.get("event") == event for e in self.events())

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(30)
        self._log.close()

    def wait(self, timeout: float = 60.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)


def outputs_for(source: Path, formats: tuple[str, ...] = ("txt", "srt", "vtt", "json")) -> list[Path]:
    return [source.with_suffix("." + fmt) for fmt in formats]


def all_files(root: Path) -> Iterator[Path]:
    return (p for p in root.rglob("*") if p.is_file())
