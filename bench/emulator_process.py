"""The Gladia emulator in a process of its own, for the benchmarks (its CPU and memory are not the client's).

    with EmulatorProcess(processing_seconds=0.0) as emulator:
        emulator.base_url, emulator.counters(), emulator.jobs(), emulator.requests(), emulator.reset()

The child runs `transcribed.emulator.Emulator` with the given EmulatorSettings fields, prints its base
URL on stdout and serves until its stdin closes (so it ends with the benchmark, even when the benchmark is
killed). Counters and jobs are read over HTTP from the emulator's `/_emulator/` control routes.
Run as a script, this module is that child.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 30.0


class EmulatorProcess:
    """A running emulator child process. `settings` are EmulatorSettings fields (data_dir as a str)."""

    def __init__(self, **settings: Any) -> None:
        self._settings = settings
        self._process: subprocess.Popen[str] | None = None
        self._http = httpx.Client(timeout=60.0)
        self.base_url = ""

    def start(self) -> EmulatorProcess:
        self._process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), json.dumps(self._settings)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self._process.stdout.readline()),  # type: ignore[union-attr]
                                  daemon=True)
        reader.start()
        reader.join(START_TIMEOUT_SECONDS)
        if not line or not line[0].startswith("http"):
            self.stop()
            raise RuntimeError(f"the emulator did not start: {line!r}")
        self.base_url = line[0].strip()
        return self

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def state(self) -> dict[str, Any]:
        """GET /_emulator/state: base_url, counters, jobs (id, status, created_at, completed_at, ...)."""
        response = self._http.get(self.base_url + "/_emulator/state")
        response.raise_for_status()
        state: dict[str, Any] = response.json()
        return state

    def counters(self) -> dict[str, int]:
        counters: dict[str, int] = self.state()["counters"]
        return counters

    def jobs(self) -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = self.state()["jobs"]
        return jobs

    def requests(self) -> list[dict[str, Any]]:
        """GET /_emulator/requests: every API request, oldest first (received_at, answered_at, method, route,
        job_id, status)."""
        response = self._http.get(self.base_url + "/_emulator/requests")
        response.raise_for_status()
        entries: list[dict[str, Any]] = response.json()["requests"]
        return entries

    def reset(self) -> None:
        """Set every counter back to zero and empty the request log."""
        self._http.post(self.base_url + "/_emulator/reset").raise_for_status()

    def stop(self) -> None:
        """Close the child's stdin (it stops and removes its private data dir), wait; kill it if it hangs."""
        self._http.close()
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


def _child(arguments: str) -> None:
    from transcribed.emulator import Emulator, EmulatorSettings

    fields = json.loads(arguments)
    if fields.get("data_dir") is not None:
        fields["data_dir"] = Path(fields["data_dir"])
    with Emulator(EmulatorSettings(**fields)) as emulator:
        print(emulator.base_url, flush=True)
        sys.stdin.read()   # until the parent closes our stdin (or dies)


if __name__ == "__main__":
    _child(sys.argv[1])
