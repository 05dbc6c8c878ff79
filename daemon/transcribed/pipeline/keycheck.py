"""While Gladia refuses the API key: check the key by itself, and resume the work when it is accepted again.

A 401 is not always a bad key for good (credit topped up, a key re-enabled in the dashboard, an auth back end
that hiccuped). On the first one the pool stops taking work and says so once (`api_key_rejected`); this loop
then sends one cheap authenticated request (`client.check_key`, a job list of one item) after
`gladia.key_check_seconds`, then at doubling intervals with jitter up to 10 minutes (`key_check_delay`, pure),
and at once when `check_now` is called (the key's source changed, or SIGHUP). When Gladia accepts the key,
`api_key_accepted` is logged and `on_accepted` resumes the pool: work already created is polled, never
created again. The pause (reason, since, next check) is kept in the ledger's meta rows, where
`transcribed status` and `explain` read it while the daemon runs (`read_pause`).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from transcribed.gladia.client import GladiaClient
    from transcribed.ledger import Ledger

log = structlog.get_logger("transcribed.keycheck")

KEY_CHECK_CAP_SECONDS = 600.0
KEY_REFUSED = "key_refused"
KEY_REFUSED_TEXT = "Gladia refused the key"
_META = ("paused_reason", "paused_since", "paused_next_check")


def key_check_delay(checks: int, first: float, jitter: float, cap: float = KEY_CHECK_CAP_SECONDS) -> float:
    """Given how many checks were already made since the pause began, the first interval, a jitter in [0, 1]
    and the cap, return the wait before the next check: `first` doubled per check made, at most
    max(cap, first), times 0.8-1.2 (jitter 0 -> 0.8, 0.5 -> 1.0, 1 -> 1.2) so daemons sharing a key spread out."""
    base = min(max(cap, first), first * 2.0 ** min(max(checks, 0), 32))
    return base * (0.8 + 0.4 * min(max(jitter, 0.0), 1.0))


@dataclass(frozen=True)
class Pause:
    """Why new work is paused (`reason`, e.g. "key_refused"), since when and when the key is checked next
    (wall-clock seconds since the epoch)."""

    reason: str
    since: float
    next_check: float

    def describe(self) -> str:
        """One line for people: "paused: Gladia refused the key since T; next check at T2"."""
        since = datetime.fromtimestamp(self.since).strftime("%Y-%m-%d %H:%M:%S")
        at = datetime.fromtimestamp(self.next_check).strftime("%Y-%m-%d %H:%M:%S")
        return f"paused: {KEY_REFUSED_TEXT} since {since}; next check at {at}"

    def as_json(self) -> dict[str, object]:
        return {"reason": self.reason, "since": self.since, "next_check": self.next_check,
                "message": self.describe()}


def read_pause(ledger: Ledger) -> Pause | None:
    """The pause the running daemon recorded in the ledger's meta rows, or None when it is not paused."""
    reason, since, next_check = (ledger.get_meta(name) or "" for name in _META)
    if not reason:
        return None
    try:
        return Pause(reason, float(since), float(next_check))
    except ValueError:
        return None


def clear_pause(ledger: Ledger) -> None:
    """Forget a recorded pause (at start: an earlier run may have stopped while paused)."""
    for name in _META:
        if ledger.get_meta(name):
            ledger.set_meta(name, "")


class KeyCheck:
    """The key-check loop (a thread of the pool's) and the pause state it owns. Thread-safe.

    `client` returns the client in use (a reload replaces it), `first` the first interval in seconds (read
    at each pause, so a reload applies), `clock` the wall clock; every wait is on `stop`'s terms.
    """

    def __init__(self, client: Callable[[], GladiaClient], ledger: Ledger, stop: threading.Event, *,
                 first: Callable[[], float], on_accepted: Callable[[], None],
                 clock: Callable[[], float], rng: random.Random | None = None) -> None:
        self._client = client
        self._ledger = ledger
        self._stop = stop
        self._first = first
        self._on_accepted = on_accepted
        self._clock = clock
        self._rng = rng or random.Random()
        self._changed = threading.Condition()
        self._pause: Pause | None = None
        self._checks = 0
        self._now = False
        self._accepted: tuple[float, int] | None = None   # when the last pause ended, after how many checks

    @property
    def pause(self) -> Pause | None:
        with self._changed:
            return self._pause

    def refused(self) -> bool:
        """Note that Gladia refused the key. Return True when this begins a pause (the caller says so, once)."""
        with self._changed:
            if self._pause is not None:
                return False
            now = self._clock()
            # Refused again soon after a check passed (the list accepts the key, the work does not): go on
            # from where the last pause's schedule was, so the checks still grow apart.
            recent = self._accepted is not None and now - self._accepted[0] < KEY_CHECK_CAP_SECONDS
            self._checks = self._accepted[1] if recent and self._accepted is not None else 0
            self._now = False
            self._pause = Pause(KEY_REFUSED, now, now + self._delay())
            pause = self._pause
            self._changed.notify_all()
        self._save(pause)
        return True

    def check_now(self) -> None:
        """Check the key at once (its source changed, or a reload): no-op when not paused."""
        with self._changed:
            if self._pause is not None:
                self._now = True
                self._changed.notify_all()

    def wake(self) -> None:
        """Wake the loop (at stop)."""
        with self._changed:
            self._changed.notify_all()

    def run(self) -> None:
        """Check the key whenever a check is due, until stop is set."""
        while not self._stop.is_set():
            with self._changed:
                self._changed.wait_for(self._due_or_stopping, timeout=self._until_due())
                if self._stop.is_set() or not self._due_or_stopping():
                    continue
                self._now = False
            self._check()
        log.info("loop_ended", loop="key_check", reason="stopping")

    def _due_or_stopping(self) -> bool:
        return self._stop.is_set() or (self._pause is not None and (self._now
                                                                    or self._clock() >= self._pause.next_check))

    def _until_due(self) -> float:
        if self._pause is None:
            return 1.0
        return min(1.0, max(0.05, self._pause.next_check - self._clock()))

    def _check(self) -> None:
        verdict = self._client().check_key()
        with self._changed:
            pause = self._pause
            if pause is None:
                return
            if verdict is True:
                self._pause = None
                self._accepted = (self._clock(), self._checks + 1)
                self._checks = 0
            else:
                self._checks += 1
                pause = replace(pause, next_check=self._clock() + self._delay())
                self._pause = pause
        if verdict is True:
            clear_pause(self._ledger)
            log.warning("api_key_accepted", paused_seconds=round(self._clock() - pause.since, 1),
                        action="work resumes: jobs already created are polled, not created again")
            self._on_accepted()
            return
        self._save(pause)
        log.info("api_key_check", result="refused" if verdict is False else "no answer",
                 next_check_in=round(pause.next_check - self._clock(), 1))

    def _delay(self) -> float:
        """Called with the lock held."""
        return key_check_delay(self._checks, self._first(), self._rng.random())

    def _save(self, pause: Pause) -> None:
        self._ledger.set_meta("paused_since", repr(pause.since))
        self._ledger.set_meta("paused_next_check", repr(pause.next_check))
        self._ledger.set_meta("paused_reason", pause.reason)
