"""Results by callback and webhook (issue 7): the hub workers wait on, fed by the receiver (receiver/server.py).

A worker that created a job with a callback URL waits on the hub instead of polling; a notice wakes it, and
it then fetches the job with GET to confirm (callbacks carry no signature, so a notice is only ever a hint:
it never carries a result into the outputs). Polling continues as a slow safety net: `wait` returns False
after its timeout and the worker polls once.

    hub = CallbackHub(config.callback)
    server = CallbackServer(hub, config.callback); server.start()
    token = hub.new_token()
    job = client.create({..., "callback": True,
                         "callback_config": {"url": hub.callback_url(token), "method": config.callback.method}})
    hub.expect(job.id, token)
    try:
        while not finished:
            hub.wait(job.id, config.callback.safety_poll_seconds)   # True: a notice; False: time to poll
            view = client.get(job.id)                                # confirm
    finally:
        hub.forget(job.id)

Every method is thread-safe. The injected clock only stamps notices and ages bookkeeping; waits use real time.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from transcribed.config import CallbackConfig
from transcribed.receiver.verify import Verdict, token_digest

__all__ = ["CallbackHub", "Verdict"]

# A token handed out but never bound to a job (its create failed) is dropped after this long; creates give
# up well before (gladia.retry_deadline_seconds).
ISSUED_TOKEN_SECONDS = 3600.0
MAX_ISSUED_TOKENS = 10_000
# Webhooks may name a job a moment before its worker calls `expect` (or before a restarted daemon resumes it):
# kept this long, at most this many, so that `expect` still sees them.
EARLY_WEBHOOK_SECONDS = 3600.0
MAX_EARLY_WEBHOOKS = 1024


@dataclass
class _Awaited:
    token: str
    pending: bool = False              # a notice `wait` has not taken yet
    notified_at: float | None = None   # the latest notice, taken or not


@dataclass
class _Issued:
    issued_at: float
    arrived_at: float | None = None    # a finishing callback came before `expect`
    job_id: str | None = None          # the id that callback named (None: it named none)


class CallbackHub:
    """Thread-safe registry of jobs awaiting a callback; the receiver notifies it, workers wait on it."""

    def __init__(self, config: CallbackConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._public_url = config.public_url.rstrip("/")
        self._clock = clock
        self._changed = threading.Condition()
        self._awaited: dict[str, _Awaited] = {}
        self._by_digest: dict[bytes, str] = {}             # token digest -> job id, for bodies naming no id
        self._issued: dict[bytes, _Issued] = {}             # insertion order = age order
        self._early_webhooks: OrderedDict[str, float] = OrderedDict()
        self._closed = False

    def __repr__(self) -> str:
        with self._changed:
            return f"CallbackHub(awaited={len(self._awaited)}, closed={self._closed})"

    # ------------------------------------------------------------------------------------ worker side

    def callback_url(self, token: str) -> str:
        """Return the URL Gladia is to call for the job holding `token`: public_url + "/callback/<token>"."""
        return f"{self._public_url}/callback/{token}"

    @property
    def webhook_url(self) -> str:
        """The URL to give Gladia's dashboard for account webhooks: public_url + "/webhook"."""
        return f"{self._public_url}/webhook"

    def new_token(self) -> str:
        """Return a fresh unguessable token (secrets.token_urlsafe(32)) for one job's callback URL.

        Issue it before the create: a callback that races ahead of `expect` is then still recognised.
        """
        return self.issue(secrets.token_urlsafe(32))

    def issue(self, token: str) -> str:
        """Like `new_token`, for a token the caller derived itself (the pipeline derives each job's token from
        a secret kept in the ledger and the attempt id, so a restarted daemon can `expect` it again)."""
        with self._changed:
            now = self._clock()
            while self._issued:
                oldest = next(iter(self._issued))
                young = now - self._issued[oldest].issued_at < ISSUED_TOKEN_SECONDS
                if young and len(self._issued) < MAX_ISSUED_TOKENS:
                    break
                del self._issued[oldest]
            self._issued[token_digest(token)] = _Issued(now)
        return token

    def expect(self, job_id: str, token: str) -> None:
        """Record that job `job_id`'s callbacks carry `token` (call it right after the create).

        A finishing callback or webhook that arrived before this call counts: the next `wait` returns at
        once. Expecting a job again with the same token keeps its state; with another token, starts afresh
        (a resumed job whose token was saved may pass the saved one).
        """
        digest = token_digest(token)
        with self._changed:
            current = self._awaited.get(job_id)
            if current is not None and hmac.compare_digest(current.token.encode(), token.encode()):
                return
            if current is not None:
                self._by_digest.pop(token_digest(current.token), None)
            awaited = _Awaited(token)
            issued = self._issued.pop(digest, None)
            if issued is not None and issued.arrived_at is not None and issued.job_id in (None, job_id):
                awaited.pending, awaited.notified_at = True, issued.arrived_at
            early = self._early_webhooks.pop(job_id, None)
            if early is not None and self._clock() - early < EARLY_WEBHOOK_SECONDS:
                awaited.pending, awaited.notified_at = True, max(early, awaited.notified_at or early)
            self._awaited[job_id] = awaited
            self._by_digest[digest] = job_id
            self._changed.notify_all()

    def forget(self, job_id: str) -> None:
        """Stop awaiting `job_id` (call it when the job is finished with, in a `finally`). Later callbacks
        for it are refused, later webhooks ignored; a `wait` on it returns False."""
        with self._changed:
            awaited = self._awaited.pop(job_id, None)
            if awaited is not None:
                self._by_digest.pop(token_digest(awaited.token), None)
            self._early_webhooks.pop(job_id, None)
            self._changed.notify_all()

    def wait(self, job_id: str, timeout: float) -> bool:
        """Block until a finishing callback or webhook for `job_id` arrives, at most `timeout` seconds.

        Return True for a notice (at once when one arrived since `expect` and was not taken yet; each
        wait takes the notices that arrived so far, so a True never repeats without a new notice);
        False on timeout, when the job is not expected, and at once after `close`.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        with self._changed:
            while True:
                awaited = self._awaited.get(job_id)
                if awaited is None or self._closed:
                    return False
                if awaited.pending:
                    awaited.pending = False
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)

    def notified_at(self, job_id: str) -> float | None:
        """Return when (by the hub's clock) the latest notice for `job_id` arrived, taken by `wait` or not;
        None when none did or the job is not expected."""
        with self._changed:
            awaited = self._awaited.get(job_id)
            return None if awaited is None else awaited.notified_at

    def close(self) -> None:
        """Wake every waiter: from now on `wait` returns False at once (shutdown: check your stop event)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    # ---------------------------------------------------------------------------------- receiver side

    def knows_token(self, token: str) -> bool:
        """Return True when `token` was issued and not yet forgotten (the receiver's check before it reads
        a body). Looked up by digest, so timing tells nothing about the token."""
        digest = token_digest(token)
        with self._changed:
            return digest in self._by_digest or digest in self._issued

    def receive_callback(self, token: str, job_id: str | None, *, finished: bool) -> Verdict:
        """Given a callback's URL token, the job id its body names (None when none) and whether its event
        ends the job, check the token in constant time against the job's and, when it matches and
        `finished`, record a notice. Return the verdict; only ACCEPTED changes anything."""
        digest = token_digest(token)
        with self._changed:
            named = job_id if job_id is not None else self._by_digest.get(digest)
            awaited = self._awaited.get(named) if named is not None else None
            if awaited is not None:
                if not hmac.compare_digest(awaited.token.encode(), token.encode()):
                    return Verdict.WRONG_TOKEN
                if finished:
                    self._note(awaited)
                return Verdict.ACCEPTED
            issued = self._issued.get(digest)
            if issued is None:
                return Verdict.UNKNOWN
            if finished:  # the job finished before its worker called expect
                issued.arrived_at, issued.job_id = self._clock(), job_id
            return Verdict.ACCEPTED

    def receive_webhook(self, job_id: str, *, finished: bool) -> bool:
        """Given an account webhook's job id and whether its event ends the job, record a notice when the
        job is awaited and `finished`; return whether it is awaited. A finishing webhook for a job not (yet)
        awaited is kept a while for a later `expect` (bounded), and otherwise ignored."""
        with self._changed:
            awaited = self._awaited.get(job_id)
            if awaited is not None:
                if finished:
                    self._note(awaited)
                return True
            if finished:
                now = self._clock()
                self._early_webhooks[job_id] = now
                self._early_webhooks.move_to_end(job_id)
                while self._early_webhooks:
                    oldest, at = next(iter(self._early_webhooks.items()))
                    if len(self._early_webhooks) <= MAX_EARLY_WEBHOOKS and now - at < EARLY_WEBHOOK_SECONDS:
                        break
                    del self._early_webhooks[oldest]
            return False

    def _note(self, awaited: _Awaited) -> None:
        awaited.pending, awaited.notified_at = True, self._clock()
        self._changed.notify_all()
