"""Bazarr's requests (whisper-asr-webservice's `asr` and `detect-language`) carried by the pipeline, never paid twice.

The audio received is a ledger content like an inbox file, keyed by the sha256 of the bytes received
("sha256:<hex>"; for PCM, of the PCM). So:

- a content already transcribed is answered from the stored result: no job, whatever the output form, after
  a restart of either program, after Bazarr gave up waiting while the job ran on;
- a new content is placed in the spool folder (PCM encoded like extracts, media files as they are), recorded
  in the ledger and queued in the pool: the same workers, the same limit, the same create-intent and
  attempt-id machinery (a crash never pays twice), hooks as for inbox files. The request waits for it;
- a request asking for a content already in the works waits for that job: detect-language followed by asr
  on the same audio is one job.

Which job serves what: the transcription answers `transcribe` and `detect-language` whatever `language` was
asked (it is what the audio says; a job created for a request with a language is created with that language).
`translate` is answered from the result's English translation, or its transcript when the audio is English.
The job detect-language creates asks for English translation too (Bazarr asks for the detected language or
for English next), so either asr is served from it. When a stored job has no translation (it was created by
a `transcribe`), a second job, with translation to English, is created once under the key
"sha256:<hex>#translate-en" and kept like any other. The [skip] rules never apply to received audio: the
caller asked for its transcript.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from transcribed import media
from transcribed.errors import MalformedResultError, MediaError
from transcribed.fingerprint import KEY_PREFIX
from transcribed.gladia.result import JobView, Transcript, parse_job
from transcribed.ledger import Entry
from transcribed.media import Stopped
from transcribed.media.pcm import encode_pcm
from transcribed.outputs.subtitles import SubtitleLimits
from transcribed.outputs.whisper import render_answer
from transcribed.pipeline.context import Context
from transcribed.pipeline.create import REQUEST_META
from transcribed.receiver.contract import Answer, AsrRequest, Received, language_name

log = structlog.get_logger("transcribed.requests")

TRANSLATED = "#translate-en"
COUNTERS = ("integrations_from_ledger", "integrations_new_jobs")
WAIT_STEP_SECONDS = 0.5
_SUFFIX_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")


class Requests:
    """The callables the integrations receiver is given for `asr` and `detect-language`.

    `ctx` is the pool's job context, `enqueue(key)` queues a recorded content in the pool, `spool` a
    private folder on the ledger's disk where received audio waits for its job (removed once done).
    Thread-safe: one lock per content serialises the decision to create a job.
    """

    def __init__(self, ctx: Context, enqueue: Callable[[str], object], spool: Path) -> None:
        self.ctx = ctx
        self.enqueue = enqueue
        self.spool = spool
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        spool.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.sweep(leftovers=True)

    # -------------------------------------------------------------------------------------------- public

    def answer(self, asked: AsrRequest, received: Received, gone: Callable[[], bool]) -> Answer | None:
        """Answer `asr` / `detect-language` for the audio received; None when the client hung up while its
        job ran (the job runs on: the next identical request gets its result). Always disposes of
        `received.path`."""
        base = KEY_PREFIX + received.sha256
        created = False
        try:
            while True:
                with self._lock_for(base):
                    step, key = self._decide(base, asked)
                    if step == "serve":
                        self._count(COUNTERS[1] if created else COUNTERS[0])
                        return self._serve(key, asked)
                    if step == "failed":
                        return self._failure(key)
                    if step == "create":
                        if created:     # created by this request, and set aside at once (e.g. needs ffmpeg)
                            entry = self.ctx.ledger.get(key)
                            reason = (entry.reason if entry else None) or "set aside"
                            return Answer(422, f"cannot transcribe this audio: {reason}\n".encode())
                        self._create(key, asked, received)
                        created = True
                self.enqueue(key)
                if self._wait(key, gone):
                    continue
                if self.ctx.stop.is_set():
                    return Answer(503, b"transcribed is stopping; the job resumes at its next start: ask again\n")
                log.info("integration_client_gone", key=key[:19], effect="the job runs on; its result is kept")
                return None
        except MediaError as exc:
            return Answer(422, f"cannot transcribe this audio: {exc}\n".encode())
        except (Stopped, OSError) as exc:
            log.info("integration_request_interrupted", error=f"{exc.__class__.__name__}: {exc}")
            return Answer(503, b"transcribed is stopping or out of disk space; try again later\n")
        finally:
            with contextlib.suppress(FileNotFoundError):
                received.path.unlink()
            with contextlib.suppress(OSError):
                self.sweep()      # audio whose job finished while its client was gone

    def sweep(self, *, leftovers: bool = False) -> None:
        """Remove spooled audio whose content is finished (done, skipped or failed for good). With
        `leftovers` (at start, before any request), also what a crash left: partial uploads and encodes, and
        audio the ledger never recorded."""
        for path in self.spool.iterdir():
            if path.name.startswith("."):
                if leftovers and path.name.startswith((".received-", ".encode-")):
                    with contextlib.suppress(OSError):
                        path.unlink()
                continue
            entry = self.ctx.ledger.entry_for_path(str(path))
            if (entry is None and leftovers) or (entry is not None and _finished(entry)):
                with contextlib.suppress(OSError):
                    path.unlink()

    # -------------------------------------------------------------------------------------------- steps

    def _decide(self, base: str, asked: AsrRequest) -> tuple[str, str]:
        """("serve", key) | ("wait", key) | ("create", key) | ("failed", key): the next step."""
        keys = (base, base + TRANSLATED)
        entries = {key: self.ctx.ledger.get(key) for key in keys}
        for key in keys:
            entry = entries[key]
            if entry is not None and entry.state == "done" and self._serves(key, asked) is not None:
                return "serve", key
        for key in keys:
            entry = entries[key]
            if entry is not None and not _finished(entry) and not (entry.state == "failed"
                                                                   and entry.next_retry_at is not None):
                return "wait", key
        for key in keys:
            entry = entries[key]
            if entry is not None and entry.state == "failed":
                return "failed", key
        base_entry = entries[base]
        if base_entry is None or base_entry.state == "skipped":
            return "create", base
        return "create", keys[1]     # the transcription exists, without the translation asked

    def _serves(self, key: str, asked: AsrRequest) -> Transcript | None:
        view = self._view(key)
        if view is None or view.result is None:
            return None
        result = view.result
        if asked.task != "translate":
            return result.transcript
        if "en" in result.translations:
            return result.translations["en"]
        return result.transcript if result.transcript.languages[:1] == ("en",) else None

    def _serve(self, key: str, asked: AsrRequest) -> Answer:
        transcript = self._serves(key, asked)
        view = self._view(key)
        assert transcript is not None and view is not None
        self._drop_spooled(key)
        if asked.task == "detect":
            code = next(iter(transcript.languages), None) or next(
                (u.language for u in transcript.utterances if u.language), None) or "en"
            body = {"detected_language": language_name(code), "language_code": code}
            return Answer(200, json.dumps(body).encode(), "application/json")
        params = view.raw.get("request_params")
        limits = SubtitleLimits.from_request(params if isinstance(params, dict) else None)
        text, media_type = render_answer(transcript, asked.output, limits)
        return Answer(200, text.encode("utf-8"), media_type)

    def _failure(self, key: str) -> Answer:
        entry = self.ctx.ledger.get(key)
        reason = (entry.reason if entry else None) or "failed"
        if entry is not None and entry.next_retry_at is not None:
            return Answer(503, f"transcription is retrying later: {reason}\n".encode())
        return Answer(502, f"transcription failed: {reason} (after fixing the cause: transcribed retry)\n".encode())

    def _create(self, key: str, asked: AsrRequest, received: Received) -> None:
        """Place the audio in the spool, record the content and the request fields its jobs use."""
        entry = self.ctx.ledger.get(key)
        target = self.spool / (key[len(KEY_PREFIX):].replace("#", "-") + self._suffix(received, asked))
        if not target.exists():
            if asked.encoded:
                tools = self.ctx.media
                if tools is not None and tools.ffprobe is not None:
                    # Undecodable or silent media is the caller's to know now (422), not a job failed later.
                    media.probe(received.path, tools.config, tools.ffprobe)
                received.path.replace(target)
            else:
                tools = self.ctx.media
                if tools is None or tools.ffmpeg is None:
                    raise MediaError("raw PCM (encode=false) needs ffmpeg to be encoded before upload")
                encode_pcm(received.path, tools.config, tools.ffmpeg, target, stop=self.ctx.stop)
        self.ctx.ledger.set_meta(REQUEST_META + key, json.dumps(self._fields(key, asked)))
        # The caller asked for this transcript: rules that skip library files ([skip]) do not apply to it.
        self.ctx.ledger.mark_send_anyway(key)
        status = target.stat()
        self.ctx.ledger.record_seen(key, str(target), str(self.spool), status.st_dev, status.st_ino,
                                    status.st_size, status.st_mtime_ns)
        if entry is not None and entry.state == "skipped":
            self.ctx.ledger.reset_for_retry(key)       # its audio had gone: here it is again
        log.info("integration_job_queued", key=key[:19], task=asked.task, language=asked.language,
                 bytes_received=received.size, bytes_spooled=status.st_size)

    def _fields(self, key: str, asked: AsrRequest) -> dict[str, Any]:
        request = self.ctx.config.transcription.request
        fields: dict[str, Any] = {}
        if asked.language is not None:
            fields["language_config"] = {"languages": [asked.language], "code_switching": False}
        elif asked.task == "detect" or "language_config" in request:
            fields["language_config"] = {"languages": [], "code_switching": False}
        # detect-language is how Bazarr learns an unknown audio language; the asr that follows asks for that
        # language or (for English subtitles of other audio) a translation: with English translation in the
        # detecting job, either is served from it, one job for both.
        if asked.task in ("translate", "detect") or key.endswith(TRANSLATED):
            config = dict(request.get("translation_config") or {})
            targets = list(config.get("target_languages") or [])
            config["target_languages"] = [*targets, "en"] if "en" not in targets else targets
            fields["translation"] = True
            fields["translation_config"] = config
        return fields

    @staticmethod
    def _suffix(received: Received, asked: AsrRequest) -> str:
        if not asked.encoded:
            return ".ogg"
        suffix = Path(received.filename).suffix.lower()
        return suffix if 1 < len(suffix) <= 6 and set(suffix[1:]) <= _SUFFIX_CHARACTERS else ".media"

    def _wait(self, key: str, gone: Callable[[], bool]) -> bool:
        """Wait until the content is finished or failed; False when the client went away or we stop."""
        stop = self.ctx.stop
        while True:
            entry = self.ctx.ledger.get(key)
            if entry is None or _finished(entry) or entry.state == "failed":
                return True
            if gone() or stop.wait(WAIT_STEP_SECONDS):
                return False

    # -------------------------------------------------------------------------------------------- helpers

    def _view(self, key: str) -> JobView | None:
        body = self.ctx.ledger.load_result(key)
        if body is None:
            return None
        try:
            return parse_job(body)
        except MalformedResultError:
            return None

    def _drop_spooled(self, key: str) -> None:
        entry = self.ctx.ledger.get(key)
        for text in entry.paths if entry else ():
            path = Path(text)
            if path.parent == self.spool:
                with contextlib.suppress(OSError):
                    path.unlink()

    def _lock_for(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def _count(self, name: str) -> None:
        with self._guard:
            ledger = self.ctx.ledger
            ledger.set_meta(name, str(int(ledger.get_meta(name) or 0) + 1))


def _finished(entry: Entry) -> bool:
    return entry.state in ("done", "skipped") or (entry.state == "failed" and entry.next_retry_at is None)
