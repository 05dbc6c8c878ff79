"""sd_notify: tell the service manager what the daemon is doing, with the stdlib socket only.

The protocol (sd_notify(3)) is one datagram of newline-separated ``KEY=VALUE`` lines sent to the unix
socket named by ``$NOTIFY_SOCKET``: a file system path, or an abstract name written ``@name``. Without
that variable (a terminal, a test, a container without systemd) every method is a no-op returning False.

Reading the environment is the composition root's job (the cli package); this module is given the values.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

import structlog
from structlog.typing import FilteringBoundLogger

# systemd drops a notification whose datagram reaches its buffer size (PIPE_BUF, 4096 bytes); a status
# line far shorter than that is also what `systemctl status` can show.
STATUS_MAX_BYTES = 1024

# A full receive queue would block sendto() forever if systemd were wedged; the main loop must go on
# (and stop sending WATCHDOG=1 only when it is itself hung), so a send gives up after this long.
SEND_TIMEOUT_SECONDS = 5.0


def _monotonic_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def parse_address(value: str | None) -> bytes | None:
    """Given the value of $NOTIFY_SOCKET, return the socket address to send to, or None.

    ``/path`` is a socket in the file system, ``@name`` one in the abstract namespace (returned with its
    leading NUL byte). Anything else (unset, empty, or a kind this module does not speak such as
    ``vsock:``) gives None: notifications are then off.
    """
    if not value:
        return None
    if value.startswith("/"):
        return os.fsencode(value)
    if value.startswith("@") and len(value) > 1:
        return b"\0" + os.fsencode(value[1:])
    return None


def parse_watchdog(usec: str | None, watchdog_pid: str | None, pid: int) -> float | None:
    """Given $WATCHDOG_USEC, $WATCHDOG_PID and our pid, return the watchdog interval in seconds, or None.

    The watchdog is ours only when WATCHDOG_PID is absent or names this process (systemd sets it so that
    a child that inherited the environment does not believe it is watched). A value that is not a
    positive integer gives None.
    """
    if not usec:
        return None
    if watchdog_pid:
        try:
            if int(watchdog_pid) != pid:
                return None
        except ValueError:
            return None
    try:
        microseconds = int(usec)
    except ValueError:
        return None
    if microseconds <= 0:
        return None
    return microseconds / 1_000_000


def one_line(text: str) -> str:
    """Return text as one line: every line break (and NUL, which systemd refuses) becomes a space."""
    return " ".join(text.replace("\0", " ").splitlines())


class Notifier:
    """Sends sd_notify messages to one socket. Thread-safe; never raises for a failed send.

    Every method returns True when the datagram was handed to the socket, False when notifications are
    off (no socket) or the send failed. The first failure of a run of failures is logged at debug level
    (event ``sd_notify_failed``); later ones are silent until a send succeeds again.
    """

    def __init__(
        self,
        address: bytes | None,
        *,
        watchdog_interval: float | None = None,
        clock_ns: Callable[[], int] = _monotonic_ns,
        logger: FilteringBoundLogger | None = None,
    ) -> None:
        """Given a socket address as parse_address returns it (None: off), the watchdog interval in
        seconds (None: no watchdog) and a CLOCK_MONOTONIC clock in nanoseconds, make a notifier."""
        self._address = address
        self._watchdog_interval = watchdog_interval
        self._clock_ns = clock_ns
        self._log: FilteringBoundLogger = (
            logger if logger is not None else structlog.get_logger("transcribed.notify")
        )
        self._lock = threading.Lock()
        self._failing = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, pid: int | None = None) -> Notifier:
        """Given an environment (NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID), return a Notifier.

        `pid` is the process the watchdog must belong to; it defaults to this process.
        """
        return cls(
            parse_address(environ.get("NOTIFY_SOCKET")),
            watchdog_interval=parse_watchdog(
                environ.get("WATCHDOG_USEC"),
                environ.get("WATCHDOG_PID"),
                os.getpid() if pid is None else pid,
            ),
        )

    @property
    def enabled(self) -> bool:
        """True when there is a socket to notify."""
        return self._address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """The watchdog timeout in seconds, or None when systemd does not watch this process.

        Call watchdog_ping() at half this interval (sd_watchdog_enabled(3)), so that one late ping is not
        yet a missed deadline.
        """
        if self._address is None:
            return None
        return self._watchdog_interval

    def ready(self) -> bool:
        """READY=1: startup is complete (the inboxes are watched)."""
        return self._send("READY=1")

    def status(self, text: str) -> bool:
        """STATUS=<text>: what the daemon is doing, as one line, cut to STATUS_MAX_BYTES of UTF-8."""
        encoded = one_line(text).encode("utf-8", "backslashreplace")[:STATUS_MAX_BYTES]
        return self._send("STATUS=" + encoded.decode("utf-8", "ignore"))

    def stopping(self) -> bool:
        """STOPPING=1: shutdown has begun (draining)."""
        return self._send("STOPPING=1")

    def reloading(self) -> bool:
        """RELOADING=1 with MONOTONIC_USEC=<now on CLOCK_MONOTONIC>: a reload has begun.

        systemd 253 and later match the timestamp against the reload request; older ones ignore it.
        Follow with ready_after_reload() once the new configuration is in force (or refused).
        """
        microseconds = self._clock_ns() // 1000
        return self._send(f"RELOADING=1\nMONOTONIC_USEC={microseconds}")

    def ready_after_reload(self) -> bool:
        """READY=1 after reloading(): the daemon runs again, with the new configuration or the old one."""
        return self._send("READY=1")

    def watchdog_ping(self) -> bool:
        """WATCHDOG=1: the main loop is alive. Send it from the loop itself, never from a helper thread."""
        return self._send("WATCHDOG=1")

    def _send(self, message: str) -> bool:
        address = self._address
        if address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.settimeout(SEND_TIMEOUT_SECONDS)
                sock.sendto(message.encode("utf-8"), address)
        except OSError as exc:
            with self._lock:
                first = not self._failing
                self._failing = True
            if first:
                self._log.debug(
                    "sd_notify_failed",
                    socket=_printable(address),
                    notification=message.split("=", 1)[0],
                    error=f"{type(exc).__name__}: {exc.strerror or exc}",
                    errno=exc.errno,
                )
            return False
        with self._lock:
            self._failing = False
        return True

    def __repr__(self) -> str:
        where = "off" if self._address is None else _printable(self._address)
        return f"Notifier({where}, watchdog_interval={self._watchdog_interval!r})"


def _printable(address: bytes) -> str:
    """The address as $NOTIFY_SOCKET spells it (``@name`` for the abstract namespace)."""
    if address.startswith(b"\0"):
        return "@" + os.fsdecode(address[1:])
    return os.fsdecode(address)
