"""Jobs and stored files of the Gladia emulator, and the scheduler that moves jobs through their lifecycle.

queued -> processing -> done | error. At most `max_concurrent_jobs` are processing; the rest wait in
`queued`, oldest first. Processing takes `processing_seconds + processing_factor * audio_duration`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from transcribed.emulator.faults import Counters, FaultBoard
from transcribed.emulator.transcript import build_result

DEFAULT_ERROR_MESSAGE = "The transcription failed"
TOO_LONG_MESSAGE = "Audio duration exceeds the maximum allowed for this plan"
UNREADABLE_MESSAGE = "Could not fetch or decode the audio file"


def iso(moment: datetime) -> str:
    """Return `moment` as ISO-8601 UTC with milliseconds and Z, like Gladia."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class StoredFile:
    """An audio file the emulator holds: uploaded, fetched from loopback, or synthesised."""

    id: str
    path: Path
    filename: str
    source: str | None
    extension: str
    size: int
    sha256: str
    duration: float
    channels: int

    def upload_body(self, audio_url: str) -> dict[str, Any]:
        """Return the `POST /v2/upload` answer for this file."""
        metadata: dict[str, Any] = {"id": self.id, "filename": self.filename}
        if self.source is not None:
            metadata["source"] = self.source
        metadata.update(extension=self.extension, size=self.size, audio_duration=self.duration,
                        number_of_channels=self.channels)
        return {"audio_url": audio_url, "audio_metadata": metadata}

    def job_body(self) -> dict[str, Any]:
        """Return the job's `file` block for this file."""
        return {"id": self.id, "filename": self.filename, "source": self.source,
                "audio_duration": self.duration, "number_of_channels": self.channels}


@dataclass
class Job:
    """One pre-recorded job. `planned_error` is set at creation when the job can only fail."""

    id: str
    sequence: int
    created_at: datetime
    custom_metadata: dict[str, Any] | None
    file: StoredFile | None
    request_params: dict[str, Any]
    seed: bytes
    planned_error: tuple[int, str] | None = None
    status: str = "queued"
    completed_at: datetime | None = None
    error_code: int | None = None
    error_message: str | None = None
    result: dict[str, Any] | None = None
    started: float | None = None
    due: float | None = None
    finishing: bool = False

    def body(self) -> dict[str, Any]:
        """Return the job as `GET /v2/pre-recorded/{id}` shows it (shares nested data: do not mutate)."""
        return {
            "id": self.id,
            "request_id": "G-" + self.id.replace("-", "")[:8],
            "version": 2,
            "status": self.status,
            "created_at": iso(self.created_at),
            "completed_at": iso(self.completed_at) if self.completed_at else None,
            "custom_metadata": self.custom_metadata,
            "error_code": self.error_code,
            "kind": "pre-recorded",
            "file": self.file.job_body() if self.file else None,
            "request_params": self.request_params,
            "result": self.result,
        }


@dataclass(frozen=True)
class ListQuery:
    """Filters of `GET /v2/pre-recorded`. Every `metadata` entry (key, value, from the deep-object form)
    must match: JSON-form values compare as JSON, deep-object strings also match a number or boolean that
    prints the same."""

    statuses: frozenset[str] = frozenset()
    day: str | None = None
    before: datetime | None = None
    after: datetime | None = None
    metadata: tuple[tuple[str, object, bool], ...] = ()


@dataclass(frozen=True)
class Timing:
    """The processing-time model and limits of the emulated backend."""

    processing_seconds: float
    processing_factor: float
    max_concurrent_jobs: int
    max_audio_duration_seconds: float


Finished = Callable[[dict[str, Any]], None]


@dataclass
class JobStore:
    """Every job and file, guarded by one condition; `run` is the scheduler loop."""

    timing: Timing
    faults: FaultBoard
    counters: Counters
    on_finished: Finished
    _condition: threading.Condition = field(default_factory=threading.Condition)
    _jobs: dict[str, Job] = field(default_factory=dict)
    _files: dict[str, StoredFile] = field(default_factory=dict)
    _sequence: int = 0

    def add_file(self, stored: StoredFile) -> None:
        """Remember a stored file by its id."""
        with self._condition:
            self._files[stored.id] = stored

    def file(self, file_id: str) -> StoredFile | None:
        """Return the stored file with this id, or None."""
        with self._condition:
            return self._files.get(file_id)

    def create(self, *, params: dict[str, Any], custom_metadata: dict[str, Any] | None,
               stored: StoredFile | None, seed: bytes, planned_error: tuple[int, str] | None) -> dict[str, Any]:
        """Create a queued job and return its body. A file longer than the limit is planned to fail (422)."""
        if stored is not None and stored.duration > self.timing.max_audio_duration_seconds:
            planned_error = planned_error or (422, TOO_LONG_MESSAGE)
        if stored is not None and stored.duration <= 0:
            planned_error = planned_error or (422, UNREADABLE_MESSAGE)
        with self._condition:
            self._sequence += 1
            job = Job(id=str(uuid.uuid4()), sequence=self._sequence, created_at=datetime.now(UTC),
                      custom_metadata=custom_metadata, file=stored, request_params=params, seed=seed,
                      planned_error=planned_error)
            self._jobs[job.id] = job
            self._condition.notify_all()
            self.counters.add("jobs_created")
            return job.body()

    def get(self, job_id: str) -> dict[str, Any] | None:
        """Return the job's body, or None when unknown or deleted."""
        with self._condition:
            job = self._jobs.get(job_id)
            return job.body() if job else None

    def job_file(self, job_id: str) -> StoredFile | None:
        """Return the audio file of a job, or None when the job or its file is gone."""
        with self._condition:
            job = self._jobs.get(job_id)
            if job is None or job.file is None or not job.file.path.exists():
                return None
            return job.file

    def delete(self, job_id: str) -> str:
        """Delete a finished job (and its file when no other job uses it); return "deleted", "forbidden"
        (still queued or processing) or "missing"."""
        with self._condition:
            job = self._jobs.get(job_id)
            if job is None:
                return "missing"
            if job.status not in ("done", "error"):
                return "forbidden"
            del self._jobs[job_id]
            stored = job.file
            if stored is not None and not any(other.file is stored for other in self._jobs.values()):
                self._files.pop(stored.id, None)
                stored.path.unlink(missing_ok=True)
            return "deleted"

    def bodies(self, query: ListQuery | None = None) -> list[dict[str, Any]]:
        """Return the bodies of the jobs matching `query` (all when None), newest first, as deep copies."""
        with self._condition:
            jobs = sorted(self._jobs.values(), key=lambda job: job.sequence, reverse=True)
            chosen = [job.body() for job in jobs if query is None or _matches(job, query)]
        return copy.deepcopy(chosen)

    def summary(self) -> list[dict[str, Any]]:
        """Return one short line per job (id, status, times, custom_metadata, error_code), newest first."""
        return [{key: body[key] for key in ("id", "status", "created_at", "completed_at", "custom_metadata",
                                            "error_code")} for body in self.bodies()]

    def wake(self) -> None:
        """Make the scheduler look at the jobs again (after a fault switch changed)."""
        with self._condition:
            self._condition.notify_all()

    def run(self, stop: threading.Event) -> None:
        """Scheduler loop: start queued jobs while capacity allows, finish due ones; return once `stop`
        is set (the caller sets it, then calls `wake`)."""
        while not stop.is_set():
            with self._condition:
                due = self._advance(time.monotonic())
                if not due and not stop.is_set():  # checked under the lock that `wake` takes
                    self._condition.wait(self._next_wait(time.monotonic()))
            for job in due:
                self._finish(job)

    def _advance(self, now: float) -> list[Job]:
        jobs = sorted(self._jobs.values(), key=lambda job: job.sequence)
        due = [] if self.faults.holding_jobs() else [
            job for job in jobs
            if job.status == "processing" and not job.finishing and job.due is not None and job.due <= now]
        busy = sum(1 for job in jobs if job.status == "processing")
        for job in jobs:
            if busy >= self.timing.max_concurrent_jobs:
                break
            if job.status == "queued":
                job.status, job.started, busy = "processing", now, busy + 1
                job.due = now + self._processing_seconds(job)
        for job in due:
            job.finishing = True
        return due

    def _processing_seconds(self, job: Job) -> float:
        if job.planned_error is not None or job.file is None:
            return self.timing.processing_seconds
        return self.timing.processing_seconds + self.timing.processing_factor * job.file.duration

    def _next_wait(self, now: float) -> float | None:
        if self.faults.holding_jobs():
            return None  # clearing the switch wakes us (Emulator.set_faults calls wake)
        dues = [job.due for job in self._jobs.values() if job.status == "processing" and job.due is not None]
        return max(0.0, min(dues) - now) if dues else None

    def _finish(self, job: Job) -> None:
        error = job.planned_error
        if error is None and (code := self.faults.job_error()) is not None:
            error = (code, DEFAULT_ERROR_MESSAGE)
        result = None
        if error is None and job.file is not None:
            result = build_result(seed=job.seed, duration=job.file.duration, channels=job.file.channels,
                                  params=job.request_params,
                                  transcription_time=time.monotonic() - (job.started or time.monotonic()))
        with self._condition:
            job.completed_at = datetime.now(UTC)
            if error is None:
                job.status, job.result = "done", result
            else:
                job.status, (job.error_code, job.error_message) = "error", error
            job.finishing = False
            body = job.body()
            self._condition.notify_all()
        self.counters.add(f"jobs_{body['status']}")
        self.on_finished({**body, "error_message": job.error_message})


def _matches(job: Job, query: ListQuery) -> bool:
    if query.statuses and job.status not in query.statuses:
        return False
    if query.day is not None and job.created_at.date().isoformat() != query.day:
        return False
    if query.before is not None and not job.created_at < query.before:
        return False
    if query.after is not None and not job.created_at > query.after:
        return False
    metadata = job.custom_metadata or {}
    return all(key in metadata and _equal(metadata[key], wanted, loose) for key, wanted, loose in query.metadata)


def _equal(actual: object, wanted: object, loose: bool) -> bool:
    if actual == wanted and type(actual) is type(wanted):
        return True
    if loose and isinstance(wanted, str) and not isinstance(actual, str | dict | list):
        return json.dumps(actual) == wanted or str(actual) == wanted
    return False


def seed_of(stored: StoredFile | None, source: str) -> bytes:
    """Return the transcript seed: the file's sha256 (for a synthesised file, the hash of its URL), or the
    hash of `source` when there is no file."""
    if stored is not None:
        return bytes.fromhex(stored.sha256)
    return hashlib.sha256(source.encode("utf-8", "replace")).digest()

