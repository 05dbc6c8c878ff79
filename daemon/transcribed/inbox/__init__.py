"""Inbox watching: which names count (filters), when a file is complete (readiness), the watcher.

`ReadyFile` is importable from here without importing watchdog; `Watcher` and `scan` live in
`transcribed.inbox.watcher` (observers) and `transcribed.inbox.scan` (one-off pass, no observers).
"""

from transcribed.inbox.readiness import ReadyFile

__all__ = ["ReadyFile"]
