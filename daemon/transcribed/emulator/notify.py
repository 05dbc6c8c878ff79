"""Outgoing notifications of the Gladia emulator: per-job callbacks and Svix-signed account webhooks.

Deliveries run on one background thread with a short timeout; a failing or slow receiver is counted and
forgotten, never retried and never able to break the emulator (API.md §6: Gladia's retry policy is unknown).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import http.client
import json
import queue
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

from transcribed.emulator.faults import Counters

CALLBACK_USER_AGENT = "axios/1.18.1"  # what a real Gladia callback carried (API.md §12.8)
WEBHOOK_USER_AGENT = "Svix-Webhooks/1.0"
DELIVERY_TIMEOUT_SECONDS = 5.0


def webhook_key(secret: str) -> bytes:
    """Return the HMAC key of a Svix secret "whsec_<base64>"; raise ValueError when it is not one."""
    if not secret.startswith("whsec_"):
        raise ValueError("webhook_secret must look like whsec_<base64>")
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("webhook_secret must look like whsec_<base64>") from None


def svix_signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """Return the svix-signature header value for a body: "v1," + base64(HMAC-SHA256(key, id.ts.body))."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def callback_body(job: dict[str, Any]) -> dict[str, Any]:
    """Given a finished job body (plus its `error_message`), return the §6.1 callback payload."""
    body: dict[str, Any] = {"id": job["id"]}
    if job["status"] == "done":
        body.update(event="transcription.success", payload=job["result"])
    else:
        body.update(event="transcription.error",
                    error={"code": job["error_code"], "message": job.get("error_message") or "error"})
    if job.get("custom_metadata") is not None:
        body["custom_metadata"] = job["custom_metadata"]
    return body


@dataclass(frozen=True)
class _Delivery:
    kind: str
    url: str
    method: str
    body: bytes
    headers: dict[str, str]


class Notifier:
    """Queues callbacks and webhooks and delivers them from one daemon thread (`start`/`stop`)."""

    def __init__(self, counters: Counters, webhook_url: str | None, webhook_secret: str | None) -> None:
        self._counters = counters
        self._webhook_url = webhook_url
        self._webhook_key = webhook_key(webhook_secret) if webhook_secret else None
        self._queue: queue.Queue[_Delivery | None] = queue.Queue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # An empty ProxyHandler: deliveries never go through a proxy taken from the environment.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def start(self) -> None:
        """Start the delivery thread."""
        self._thread = threading.Thread(target=self._run, name="gladia-emulator-notify", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Drop what is still queued and join the delivery thread (at most one delivery timeout)."""
        self._stopping.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def job_finished(self, job: dict[str, Any]) -> None:
        """Queue the job's callback (when it asked for one) and the account webhook (when configured)."""
        params = job.get("request_params") or {}
        config = params.get("callback_config") or {}
        if params.get("callback") and config.get("url"):
            self._callback(str(config["url"]), str(config.get("method") or "POST"), job)
        elif params.get("callback_url"):
            self._callback(str(params["callback_url"]), "POST", job)  # deprecated form: always POST
        event = "transcription.success" if job["status"] == "done" else "transcription.error"
        self.webhook(event, job["id"])

    def _callback(self, url: str, method: str, job: dict[str, Any]) -> None:
        body = json.dumps(callback_body(job)).encode()
        headers = {"Content-Type": "application/json", "User-Agent": CALLBACK_USER_AGENT}
        self._queue.put(_Delivery("callbacks", url, method, body, headers))

    def webhook(self, event: str, job_id: str) -> None:
        """Queue an account webhook {event, payload: {id}}, Svix-signed when a secret is set."""
        if not self._webhook_url:
            return
        body = json.dumps({"event": event, "payload": {"id": job_id}}).encode()
        headers = {"Content-Type": "application/json", "User-Agent": WEBHOOK_USER_AGENT}
        if self._webhook_key is not None:
            message_id, timestamp = f"msg_{uuid.uuid4().hex}", int(time.time())
            headers.update({"svix-id": message_id, "svix-timestamp": str(timestamp),
                            "svix-signature": svix_signature(self._webhook_key, message_id, timestamp, body)})
        self._queue.put(_Delivery("webhooks", self._webhook_url, "POST", body, headers))

    def _run(self) -> None:
        while True:
            delivery = self._queue.get()
            if delivery is None or self._stopping.is_set():
                return
            self._deliver(delivery)

    def _deliver(self, delivery: _Delivery) -> None:
        request = urllib.request.Request(  # noqa: S310 - the receiver's URL is the user's choice
            delivery.url, data=delivery.body, headers=delivery.headers, method=delivery.method)
        try:
            with self._opener.open(request, timeout=DELIVERY_TIMEOUT_SECONDS) as response:
                response.read(64 * 1024)
            self._counters.add(f"{delivery.kind}_delivered")
        except (OSError, ValueError, http.client.HTTPException):
            # A receiver that refuses, fails or times out is the receiver's problem, never ours.
            self._counters.add(f"{delivery.kind}_failed")
