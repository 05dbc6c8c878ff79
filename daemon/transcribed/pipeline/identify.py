"""Identification: which content a complete file holds, recorded in the ledger before any work is queued.

A file whose stat matches a finished record is passed over with a stat and a read (the restart fast path);
else its content key is its fingerprint (a link file's: its normalised URL), plus a digest of the request
parameters when its folder's settings change them. A copy or rename of finished content gets its outputs from
the stored result, with no new job; a file whose folder settings are invalid is held, unread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

from transcribed.fingerprint import fingerprint
from transcribed.inbox import ReadyFile
from transcribed.inbox.links import LinkError, is_link, link_key, read_link
from transcribed.ledger import Entry
from transcribed.pipeline.context import Context, settings_for
from transcribed.pipeline.finish import publish_stored
from transcribed.pipeline.holds import FolderHolds
from transcribed.pipeline.settled import has_outputs_for

log = structlog.get_logger("transcribed.pool")


class Identifier:
    """Records complete files in the ledger. Given the job Context, the pool's FolderHolds and `enqueue`
    (queue a recorded content unless it is queued or running; return whether it was queued). Thread-safe."""

    def __init__(self, ctx: Context, holds: FolderHolds, enqueue: Callable[[Entry], bool]) -> None:
        self.ctx = ctx
        self._holds = holds
        self._enqueue = enqueue
        self._lock = threading.Lock()
        self.hashed = 0     # how many files were fingerprinted in this run

    def identify(self, ready: ReadyFile) -> str | None:
        """Record a complete file in the ledger and queue its content when there is work to do; return the
        content key when it was queued (or is already queued or running), else None.

        A file whose folder settings (.transcribed.toml) are invalid is held, unread, until they are fixed.
        The content key is the file's fingerprint (a link file's: its normalised URL), plus a digest of the
        request parameters when its folder's settings change them (see folders.Effective.request_tag)."""
        ledger = self.ctx.ledger
        path = str(ready.path)
        key = ledger.lookup_stat(path, ready.device, ready.inode, ready.size, ready.mtime_ns)
        if key is not None:
            known = ledger.get(key)
            if known is not None and path in known.paths and known.state in ("done", "skipped") \
                    and (known.state == "skipped" or has_outputs_for(self.ctx.config, known.outputs, path)):
                return None   # the restart fast path: a stat and a read, no write, no hash
        effective = settings_for(self.ctx, ready.path)
        if not effective.valid:
            self._holds.hold(ready.path, effective.problems, ready=ready)
            return None
        if key is None:
            key = self._key_of(ready)
            if key is None:
                return None
            key = effective.content_key(key)
        entry, created = ledger.record_seen(key, path, str(ready.root), ready.device, ready.inode, ready.size,
                                            ready.mtime_ns)
        if created:
            log.info("file_discovered", file=path, key=key[:19], bytes=ready.size)
        if entry.state == "done":
            if not has_outputs_for(self.ctx.config, entry.outputs, path):
                # A copy or a rename of finished content: outputs from the stored result, no new job.
                log.info("known_content_new_path", file=path, key=key[:19])
                publish_stored(self.ctx, key, [path])
            return None
        if entry.state == "skipped" or (entry.state == "failed" and entry.next_retry_at is None):
            return None
        if entry.state == "failed" and entry.next_retry_at is not None and entry.next_retry_at > self.ctx.clock():
            return None   # the scheduler queues it when due
        self._enqueue(entry)
        return key

    def _key_of(self, ready: ReadyFile) -> str | None:
        """The content key of a file (None: it changed while being read, or is a link file failed here)."""
        path = str(ready.path)
        if is_link(ready.path):
            try:
                return link_key(read_link(ready.path))
            except LinkError as exc:
                # Recorded under its bytes and failed for good, with the reason: `explain` and the log say it.
                key = fingerprint(ready.path)
                ledger = self.ctx.ledger
                entry, _ = ledger.record_seen(key, path, str(ready.root), ready.device, ready.inode, ready.size,
                                              ready.mtime_ns)
                if entry.state != "failed":
                    reason = f"not a usable link file: {exc}"
                    ledger.mark_failed(key, reason, retry_at=None)
                    log.error("file_failed", file=path, reason=reason)
                return None
        key = fingerprint(ready.path)
        with self._lock:
            self.hashed += 1
        after = ready.path.stat()
        if (after.st_size, after.st_mtime_ns) != (ready.size, ready.mtime_ns):
            log.info("file_changed_while_hashing", file=path)   # the watcher hands it on again
            return None
        return key
