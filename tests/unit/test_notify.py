"""sd_notify over a real unix datagram socket that the test binds, as systemd would."""

from __future__ import annotations

import array
import os
import socket
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from transcribed.notify import STATUS_MAX_BYTES, Notifier, parse_address, parse_watchdog

RECEIVE_DEADLINE_SECONDS = 30.0


class Listener:
    """The service manager's end: a bound SOCK_DGRAM socket that hands back each datagram."""

    def __init__(self, sock: socket.socket, spelling: str) -> None:
        self.sock = sock
        self.spelling = spelling  # what $NOTIFY_SOCKET holds

    def receive(self) -> str:
        self.sock.settimeout(RECEIVE_DEADLINE_SECONDS)
        return self.sock.recv(65536).decode("utf-8")

    def assert_empty(self) -> None:
        self.sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            self.sock.recv(65536)


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        yield Listener(sock, str(path))


@pytest.fixture
def abstract_listener() -> Iterator[Listener]:
    name = f"transcribed-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        yield Listener(sock, "@" + name)


def test_ready_reaches_a_socket_in_the_file_system(listener: Listener) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": listener.spelling})

    assert notifier.enabled
    assert notifier.ready() is True
    assert listener.receive() == "READY=1"


def test_ready_reaches_a_socket_in_the_abstract_namespace(abstract_listener: Listener) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": abstract_listener.spelling})

    assert notifier.ready() is True
    assert abstract_listener.receive() == "READY=1"


def test_a_service_lifetime_arrives_in_order_one_datagram_per_message(listener: Listener) -> None:
    ticks = iter([5_000_123_456])
    notifier = Notifier(parse_address(listener.spelling), clock_ns=lambda: next(ticks))

    notifier.ready()
    notifier.status("watching 1 inbox; 0 in flight")
    notifier.watchdog_ping()
    notifier.reloading()
    notifier.ready_after_reload()
    notifier.stopping()

    received = [listener.receive() for _ in range(6)]
    assert received == [
        "READY=1",
        "STATUS=watching 1 inbox; 0 in flight",
        "WATCHDOG=1",
        "RELOADING=1\nMONOTONIC_USEC=5000123",
        "READY=1",
        "STOPPING=1",
    ]
    listener.assert_empty()


def test_reloading_stamps_the_real_monotonic_clock_in_microseconds(listener: Listener) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": listener.spelling})

    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000

    first, second = listener.receive().split("\n")
    assert first == "RELOADING=1"
    key, value = second.split("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3 in flight\n2 queued", "STATUS=3 in flight 2 queued"),
        ("a\r\nb\rc\x0bd\u2028e", "STATUS=a b c d e"),
        ("file\nname.mp3\n", "STATUS=file name.mp3"),
        ("nul\0inside", "STATUS=nul inside"),
        ("", "STATUS="),
    ],
)
def test_status_is_always_one_line(listener: Listener, text: str, expected: str) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": listener.spelling})

    assert notifier.status(text) is True
    assert listener.receive() == expected


def test_status_with_an_undecodable_file_name_is_still_valid_utf8(listener: Listener) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": listener.spelling})
    name = os.fsdecode(b"caf\xe9\xff.mp3")  # surrogate escapes, as os.listdir returns them

    assert notifier.status(f"uploading {name}") is True
    received = listener.receive()  # decoding as strict UTF-8 is the assertion
    assert received.startswith("STATUS=uploading caf")
    assert received.endswith(".mp3")


def test_a_huge_status_is_cut_to_a_datagram_systemd_accepts(listener: Listener) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": listener.spelling})

    assert notifier.status("é" * 10_000) is True
    received = listener.receive()
    assert received.startswith("STATUS=éé")
    assert len(received.encode("utf-8")) <= len("STATUS=") + STATUS_MAX_BYTES


def test_the_kernel_vouches_for_our_pid_as_notify_access_main_requires(listener: Listener) -> None:
    listener.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    notifier = Notifier.from_env({"NOTIFY_SOCKET": listener.spelling})

    notifier.ready()
    listener.sock.settimeout(RECEIVE_DEADLINE_SECONDS)
    credentials_size = struct.calcsize("3i")
    data, ancillary, _, _ = listener.sock.recvmsg(4096, socket.CMSG_SPACE(credentials_size))

    assert data == b"READY=1"
    [(level, kind, payload)] = ancillary
    assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_CREDENTIALS)
    pid, _uid, _gid = array.array("i", payload[:credentials_size])
    assert pid == os.getpid()


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"NOTIFY_SOCKET": ""},
        {"NOTIFY_SOCKET": "@"},
        {"NOTIFY_SOCKET": "vsock:2:1234"},
        {"NOTIFY_SOCKET": "relative/path"},
        {"WATCHDOG_USEC": "60000000"},
    ],
)
def test_without_a_usable_socket_every_call_is_a_quiet_no_op(environ: dict[str, str]) -> None:
    notifier = Notifier.from_env(environ)

    with capture_logs() as logs:
        results = [
            notifier.ready(),
            notifier.status("x"),
            notifier.watchdog_ping(),
            notifier.reloading(),
            notifier.ready_after_reload(),
            notifier.stopping(),
        ]

    assert results == [False] * 6
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    assert logs == []


@pytest.mark.parametrize(
    ("usec", "watchdog_pid", "expected"),
    [
        ("60000000", None, 60.0),
        ("60000000", "4242", 60.0),
        ("1500000", "", 1.5),
        ("60000000", "4243", None),  # another process's watchdog (inherited environment)
        ("60000000", "not-a-pid", None),
        (None, "4242", None),
        ("", None, None),
        ("0", None, None),
        ("-5", None, None),
        ("sixty", None, None),
    ],
)
def test_watchdog_interval_is_ours_only_when_the_pid_matches(
    listener: Listener, usec: str | None, watchdog_pid: str | None, expected: float | None
) -> None:
    environ = {"NOTIFY_SOCKET": listener.spelling}
    if usec is not None:
        environ["WATCHDOG_USEC"] = usec
    if watchdog_pid is not None:
        environ["WATCHDOG_PID"] = watchdog_pid

    assert Notifier.from_env(environ, pid=4242).watchdog_interval == expected
    assert parse_watchdog(usec, watchdog_pid, 4242) == expected


def test_watchdog_pid_defaults_to_this_process(listener: Listener) -> None:
    environ = {"NOTIFY_SOCKET": listener.spelling, "WATCHDOG_USEC": "2000000"}

    assert Notifier.from_env({**environ, "WATCHDOG_PID": str(os.getpid())}).watchdog_interval == 2.0
    assert Notifier.from_env({**environ, "WATCHDOG_PID": str(os.getpid() + 1)}).watchdog_interval is None


def test_a_vanished_socket_never_raises_and_is_logged_once_per_outage(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    notifier = Notifier.from_env({"NOTIFY_SOCKET": str(path)})

    with capture_logs() as logs:
        assert notifier.ready() is False
        assert notifier.status("still down") is False
        assert notifier.watchdog_ping() is False

        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(path))
            assert notifier.watchdog_ping() is True
        path.unlink()

        assert notifier.stopping() is False

    assert [(entry["event"], entry["log_level"], entry["notification"]) for entry in logs] == [
        ("sd_notify_failed", "debug", "READY"),
        ("sd_notify_failed", "debug", "STOPPING"),
    ]
    assert logs[0]["socket"] == str(path)
    assert "FileNotFoundError" in logs[0]["error"]


def test_a_socket_that_is_not_listening_is_a_failed_send_not_an_exception(tmp_path: Path) -> None:
    not_a_socket = tmp_path / "plain-file"
    not_a_socket.write_text("")
    too_long = "/" + "x" * 200

    assert Notifier.from_env({"NOTIFY_SOCKET": str(not_a_socket)}).ready() is False
    assert Notifier.from_env({"NOTIFY_SOCKET": too_long}).ready() is False


def test_repr_names_the_socket(listener: Listener) -> None:
    assert listener.spelling in repr(Notifier.from_env({"NOTIFY_SOCKET": listener.spelling}))
    assert "off" in repr(Notifier.from_env({}))
