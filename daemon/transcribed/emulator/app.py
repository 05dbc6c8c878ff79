"""A local, protocol-faithful Gladia v2 pre-recorded server: for the tests, and to try the daemon offline.

    with Emulator(EmulatorSettings()) as emulator:
        client = GladiaClient(api_key="any", api_url=emulator.base_url)

Speaks the endpoints of API.md §1 (and the legacy /v2/transcription alias) over real HTTP/1.1 with
keep-alive; uploads are streamed to disk, never held in memory. Transcripts are deterministic and marked
"[emulated transcript]". Fault switches (Faults) break it on purpose; counters show what happened; both are
reachable in-process and over HTTP under /_emulator/ (state, faults, reset, keys), which need no key. A
request log (`requests()`, `GET /_emulator/requests`) says when each API request arrived and was answered.
Stdlib only. This module sets up no logging, reads no environment and installs no signal handler.
"""

from __future__ import annotations

import dataclasses
import hmac
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from transcribed.emulator.faults import Counters, FaultBoard, Faults, RequestLog
from transcribed.emulator.httpd import Control, EmulatorServer, Wiring
from transcribed.emulator.jobs import JobStore, Timing
from transcribed.emulator.notify import Notifier, webhook_key
from transcribed.emulator.routes import ROUTE_KEYS, Routes

__all__ = ["Emulator", "EmulatorSettings", "Faults", "serve"]

Events = Callable[[str, dict[str, Any]], None]
"""Optional observer: called with ("emulator_request", {method, route, status, duration_ms}) per request."""


@dataclass(frozen=True)
class EmulatorSettings:
    """How the emulator listens and behaves. Secrets are kept out of the repr."""

    host: str = "127.0.0.1"
    port: int = 0  # 0 = ephemeral
    api_keys: frozenset[str] | None = field(default=None, repr=False)  # None = accept any non-empty key
    data_dir: Path | None = None  # None = a private temp dir removed on stop
    processing_seconds: float = 0.2
    processing_factor: float = 0.0
    max_concurrent_jobs: int = 25
    max_upload_bytes: int = 1000 * 1000 * 1000
    max_audio_duration_seconds: float = 135 * 60
    public_base_url: str | None = None  # what URLs in bodies say; default http://host:port
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    seed: int = 0

    def problems(self) -> list[str]:
        """Return one line per unusable setting (empty when all are fine)."""
        problems = []
        if not 0 <= self.port <= 65535:
            problems.append("port must be within 0..65535")
        if self.api_keys is not None and not all(isinstance(key, str) and key for key in self.api_keys):
            problems.append("api_keys must hold non-empty strings")
        if self.processing_seconds < 0 or self.processing_factor < 0:
            problems.append("processing_seconds and processing_factor must be >= 0")
        if self.max_concurrent_jobs < 1:
            problems.append("max_concurrent_jobs must be >= 1")
        if self.max_upload_bytes < 0 or self.max_audio_duration_seconds <= 0:
            problems.append("max_upload_bytes must be >= 0 and max_audio_duration_seconds > 0")
        if self.webhook_secret is not None:
            try:
                webhook_key(self.webhook_secret)
            except ValueError as exc:
                problems.append(str(exc))
        return problems


class Emulator:
    """The emulator: `start` binds and serves on background threads, `stop` ends them all."""

    def __init__(self, settings: EmulatorSettings, faults: Faults | None = None, *,
                 events: Events | None = None) -> None:
        """Raise ValueError when the settings or the fault switches are unusable."""
        problems = settings.problems()
        if problems:
            raise ValueError("; ".join(problems))
        self._settings = settings
        self._api_keys = settings.api_keys
        self._events = events
        self._counters = Counters()
        self._requests = RequestLog()
        self._faults = FaultBoard(faults or Faults(), settings.seed, ROUTE_KEYS)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._server: EmulatorServer | None = None
        self._threads: list[threading.Thread] = []
        self._private_dir: Path | None = None
        self._base_url: str | None = None
        self._notifier = Notifier(self._counters, settings.webhook_url, settings.webhook_secret)
        timing = Timing(settings.processing_seconds, settings.processing_factor, settings.max_concurrent_jobs,
                        settings.max_audio_duration_seconds)
        self._store = JobStore(timing, self._faults, self._counters, self._notifier.job_finished)

    def __repr__(self) -> str:
        return f"Emulator(base_url={self._base_url!r})"

    def start(self) -> None:
        """Bind, start the server, scheduler and delivery threads; return once connections are accepted.
        Raise OSError when the address cannot be bound, RuntimeError when already started."""
        with self._lock:
            if self._server is not None or self._stop.is_set():
                raise RuntimeError("the emulator can be started once")
            data_dir = self._settings.data_dir
            if data_dir is None:
                data_dir = self._private_dir = Path(tempfile.mkdtemp(prefix="gladia-emulator-"))
            files_dir = data_dir / "files"
            files_dir.mkdir(parents=True, exist_ok=True)
            routes = Routes(self._store, self._faults, self._counters, files_dir, self._public_base,
                            self._own_prefixes, self._settings.max_upload_bytes,
                            lambda job_id: self._notifier.webhook("transcription.created", job_id))
            control = Control(self._state, self._change_faults_json, self._faults.as_json, self.reset_counters,
                              self._set_keys_json, self._requests.snapshot)
            wiring = Wiring(routes, self._faults, self._counters, control, self._accepts_key, self._stop,
                            self._events, self._requests)
            try:
                server = EmulatorServer((self._settings.host, self._settings.port), wiring)
            except OSError:
                self._remove_private_dir()
                raise
            self._server = server
            host, port = server.server_address[:2]
            shown = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(str(host), str(host))
            self._base_url = f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"
            self._notifier.start()
            self._threads = [
                threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                 name="gladia-emulator-server", daemon=True),
                threading.Thread(target=self._store.run, args=(self._stop,), name="gladia-emulator-jobs",
                                 daemon=True),
            ]
            for thread in self._threads:
                thread.start()

    def stop(self) -> None:
        """Stop serving: close the listening socket and every connection, join every thread, and remove
        the private data dir. Safe to call more than once, and before `start`."""
        with self._lock:
            self._stop.set()
            server, self._server = self._server, None
            if server is None:
                self._remove_private_dir()
                return
            server.shutdown()
            server.server_close()
            for thread in server.close_connections():
                thread.join()
            self._store.wake()
            for thread in self._threads:
                thread.join()
            self._threads = []
            self._notifier.stop()
            self._remove_private_dir()

    def _remove_private_dir(self) -> None:
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)
            self._private_dir = None

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """The URL clients connect to, e.g. http://127.0.0.1:43123. RuntimeError before `start`."""
        if self._base_url is None:
            raise RuntimeError("the emulator is not started")
        return self._base_url

    def _public_base(self) -> str:
        return (self._settings.public_base_url or self.base_url).rstrip("/")

    def _own_prefixes(self) -> list[str]:
        port = self.base_url.rsplit(":", 1)[-1]
        return [self._public_base(), self.base_url, f"http://localhost:{port}", f"http://127.0.0.1:{port}"]

    def _accepts_key(self, key: str | None) -> bool:
        if not key:
            return False
        keys = self._api_keys
        if keys is None:
            return True
        return any(hmac.compare_digest(key.encode(), known.encode()) for known in keys)

    def set_api_keys(self, keys: frozenset[str] | None) -> None:
        """Accept only these keys from now on (None: any non-empty key), as when a key is revoked or
        re-enabled; raise ValueError for an empty key."""
        if keys is not None and not all(isinstance(key, str) and key for key in keys):
            raise ValueError("api_keys must hold non-empty strings")
        self._api_keys = keys

    def _set_keys_json(self, body: dict[str, object]) -> dict[str, Any]:
        keys = body.get("api_keys")
        if keys is not None and not (isinstance(keys, list) and all(isinstance(key, str) for key in keys)):
            raise ValueError("api_keys must be a list of strings, or null for any key")
        self.set_api_keys(None if keys is None else frozenset(keys))
        return {"keys": None if keys is None else len(keys)}

    def set_faults(self, **changes: object) -> None:
        """Change fault switches by name (see Faults), atomically; raise ValueError for unknown names or
        bad values."""
        self._faults.change(changes)
        self._store.wake()

    def faults(self) -> Faults:
        """Return a copy of the fault switches in force."""
        return self._faults.snapshot()

    def _change_faults_json(self, changes: dict[str, object]) -> dict[str, Any]:
        self.set_faults(**changes)
        return self._faults.as_json()

    def counters(self) -> dict[str, int]:
        """Return the counters: requests by route key ("POST /v2/upload") and by route and status
        ("POST /v2/upload 200", "... dropped"), jobs_created, jobs_done, jobs_error, bytes_uploaded,
        files_uploaded, callbacks_delivered/failed, webhooks_delivered/failed."""
        return self._counters.snapshot()

    def reset_counters(self) -> None:
        """Set every counter back to zero and empty the request log."""
        self._counters.reset()
        self._requests.reset()

    def requests(self) -> list[dict[str, Any]]:
        """Return the request log, oldest first: one entry per API request (control routes excluded) with
        received_at and answered_at (when its answer was about to be written; wall-clock seconds since the
        epoch), method, route (the counters' route key), job_id (the path's id, or None) and status (or
        "dropped"). An entry is in the log before its answer leaves."""
        return self._requests.snapshot()

    def jobs(self) -> list[dict[str, object]]:
        """Return every job body as GET /v2/pre-recorded/{id} would, newest first."""
        return list(self._store.bodies())

    def _state(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "counters": self.counters(), "jobs": self._store.summary(),
                "faults": dataclasses.asdict(self.faults())}


def serve(settings: EmulatorSettings, faults: Faults, stop: threading.Event,
          announce: Callable[[str], None], *, events: Events | None = None) -> None:
    """Run an emulator until `stop` is set; call `announce(base_url)` once it is listening.
    Raise ValueError for unusable settings and OSError when the address cannot be bound."""
    with Emulator(settings, faults, events=events) as emulator:
        announce(emulator.base_url)
        stop.wait()
