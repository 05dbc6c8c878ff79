"""Is a file complete? Pure decisions over stat observations in time; no I/O, no clock of its own.

A file is watched through its version: (device, inode, size, mtime_ns). The caller stats the file, feeds
each observation to `observe` with the time it was taken, and asks `decide` what to do now:

- Settle path: the file is complete once its version has stayed the same for `settle_seconds`, measured
  from the first observation of that version. A file still growing keeps changing and is never ready.
- Fast path: after a close-after-write or a move into the inbox, the file is complete once a second
  observation `confirm_seconds` later shows the same version (a closed file can be reopened; a file can be
  moved while its writer still holds it). A later change drops back to the settle path, except a
  metadata-only change (`cp -p` sets times after the close) while already on the fast path.
- Empty files never take the fast path: `touch`-then-write placeholders would otherwise be handed on
  empty.
- A file that is not complete `timeout_seconds` after it was first seen has timed out: the caller reports
  it and does not hand it on.

`ReadyFile` lives here (not in watcher.py) so code that only consumes it need not import watchdog.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

Version = tuple[int, int, int, int]
"""(device, inode, size, mtime_ns) as os.lstat reports them."""


@dataclass(frozen=True, slots=True)
class ReadyFile:
    """A complete media file, handed on once per (path, version). `root` is the inbox path it was found
    under; the stat fields are those of the observation that decided it was complete."""

    path: Path
    root: Path
    device: int
    inode: int
    size: int
    mtime_ns: int

    @property
    def version(self) -> Version:
        return (self.device, self.inode, self.size, self.mtime_ns)


@dataclass(frozen=True, slots=True)
class SettlePolicy:
    """How long to wait. `confirm_seconds` is the fast path's second look (capped at settle_seconds)."""

    settle_seconds: float
    timeout_seconds: float
    confirm_seconds: float = 0.1

    def __post_init__(self) -> None:
        if self.settle_seconds < 0 or self.timeout_seconds <= 0 or self.confirm_seconds < 0:
            raise ValueError("settle and confirm times must be >= 0 and the timeout > 0")


@dataclass(frozen=True, slots=True)
class Settling:
    """What is known about one file on its way to complete.

    `first_seen`: when it was first observed; `changed_at`: when its current version was first observed;
    `fast_since`: when a close/move event was last observed for the current version (None: settle path).
    """

    version: Version
    first_seen: float
    changed_at: float
    fast_since: float | None = None


class Verdict(enum.Enum):
    READY = "ready"
    WAIT = "wait"
    TIMED_OUT = "timed_out"


@dataclass(frozen=True, slots=True)
class Decision:
    """`due` is when to observe again (only for WAIT)."""

    verdict: Verdict
    due: float | None = None


def observe(state: Settling | None, version: Version, now: float, *, fast: bool = False,
            metadata_only: bool = False) -> Settling:
    """Fold an observation taken at `now` into `state` (None for a file not seen before) and return the
    new state.

    `fast`: the observation follows a close-after-write or a move into the inbox. `metadata_only`: it
    follows an attribute change (chmod, utime), which keeps a file on the fast path it was already on.
    """
    if state is None:
        return Settling(version, now, now, now if fast else None)
    if version != state.version:
        stays_fast = fast or (metadata_only and state.fast_since is not None)
        return Settling(version, state.first_seen, now, now if stays_fast else None)
    if fast and state.fast_since is None:
        return Settling(version, state.first_seen, state.changed_at, now)
    return state


def ready_at(state: Settling, policy: SettlePolicy) -> float:
    """The earliest time at which an observation showing the same version makes the file complete."""
    if state.fast_since is not None and state.version[2] > 0:
        return state.fast_since + min(policy.confirm_seconds, policy.settle_seconds)
    return state.changed_at + policy.settle_seconds


def decide(state: Settling, now: float, policy: SettlePolicy) -> Decision:
    """Given the state right after an observation taken at `now`, return READY, TIMED_OUT or WAIT(due).

    Only call it with `now` equal to the time of the latest observation: readiness is a claim that the
    version has not changed between `changed_at` (or `fast_since`) and now.
    """
    complete_at = ready_at(state, policy)
    if now >= complete_at:
        return Decision(Verdict.READY)
    deadline = state.first_seen + policy.timeout_seconds
    if now >= deadline:
        return Decision(Verdict.TIMED_OUT)
    return Decision(Verdict.WAIT, min(complete_at, deadline))


def settled_by_mtime(mtime_ns: int, settled_before_ns: int | None) -> bool:
    """For a one-off scan without observations over time: complete when the file's own mtime is older
    than `settled_before_ns` (None: everything counts as complete)."""
    return settled_before_ns is None or mtime_ns < settled_before_ns
