"""Hostile file names through the real watcher (RELIABILITY S5): newlines, invalid UTF-8, a leading "-",
255-byte names. No crash, each handed on once under its exact name, and one log line each."""

from __future__ import annotations

import io
import itertools
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from transcribed import logs
from transcribed.config import InboxConfig
from transcribed.inbox.scan import scan
from transcribed.inbox.watcher import ReadyFile, Watcher

DEADLINE = 30.0

stems = st.binary(min_size=1, max_size=251).filter(lambda raw: b"/" not in raw and b"\x00" not in raw)


def acceptable(stem: bytes) -> bool:
    """Stems that still make a media name (hidden and temporary prefixes are ignored on purpose)."""
    text = os.fsdecode(stem).casefold()
    return not text.startswith((".", "~$", "~syncthing~")) and "transcribed-tmp" not in text


@pytest.fixture
def captured_json_logs() -> Iterator[io.StringIO]:
    saved = structlog.get_config()
    buffer = io.StringIO()
    logs.configure("json", "debug", stream=buffer)
    try:
        yield buffer
    finally:
        structlog.configure(**saved)


def test_hostile_names_are_handed_on_once_each_with_one_log_line(tmp_path: Path,
                                                                  captured_json_logs: io.StringIO) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    ready: list[ReadyFile] = []
    changed = threading.Condition()

    def on_ready(item: ReadyFile) -> None:
        with changed:
            ready.append(item)
            changed.notify_all()

    config = InboxConfig(paths=(inbox,), recursive=True, settle_seconds=0.3, rescan_seconds=600.0,
                         observer="native")
    watcher = Watcher(config, on_ready)
    watcher.start()
    folders = itertools.count()
    created: list[bytes] = []
    try:
        assert watcher.wait_started(DEADLINE)

        @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(stem=stems)
        @example(stem=b"line\nbreak")
        @example(stem=b"\xff\xfe invalid \xc3\x28 utf-8")
        @example(stem=b"-rf --help")
        @example(stem=b"n" * 251)
        @example(stem=b"\r\x1b[31mred\x1b[0m\t")
        def drop(stem: bytes) -> None:
            assume(acceptable(stem))
            folder = os.fsencode(inbox) + b"/case-%d" % next(folders)
            os.mkdir(folder)
            path = folder + b"/" + stem + b".mp3"
            descriptor = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
            try:
                os.write(descriptor, b"hostile")
            finally:
                os.close(descriptor)
            created.append(path)
            expected = Path(os.fsdecode(path))
            with changed:
                assert changed.wait_for(lambda: any(item.path == expected for item in ready), DEADLINE), \
                    f"{path!r} was not handed on"

        drop()
    finally:
        watcher.stop()

    assert len(created) >= 5
    assert sorted(os.fsencode(item.path) for item in ready) == sorted(created)   # once each, exact names
    lines = captured_json_logs.getvalue().splitlines()
    events = [json.loads(line) for line in lines]                                  # every line is one event
    ready_lines = [event for event in events if event["event"] == "file_ready"]
    assert len(ready_lines) == len(created)
    assert [event for event in events if event["level"] in ("error", "critical")] == []

    found, settling = scan(config, settled_before_ns=None)
    assert sorted(os.fsencode(item.path) for item in found) == sorted(created)
    assert settling == []


def test_hostile_names_stay_on_one_console_line(tmp_path: Path) -> None:
    saved = structlog.get_config()
    buffer = io.StringIO()
    logs.configure("console", "debug", stream=buffer)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    names = [b"a\nb.mp3", b"\xff\xfe.wav", b"c\rd.flac", b"-x.ogg"]
    ready: list[ReadyFile] = []
    changed = threading.Condition()

    def on_ready(item: ReadyFile) -> None:
        with changed:
            ready.append(item)
            changed.notify_all()

    watcher = Watcher(InboxConfig(paths=(inbox,), settle_seconds=0.3, observer="native"), on_ready)
    try:
        watcher.start()
        assert watcher.wait_started(DEADLINE)
        for name in names:
            descriptor = os.open(os.fsencode(inbox) + b"/" + name, os.O_CREAT | os.O_WRONLY, 0o644)
            os.close(descriptor)
        with changed:
            assert changed.wait_for(lambda: len(ready) == len(names), DEADLINE)
    finally:
        watcher.stop()
        structlog.configure(**saved)
    ready_lines = [line for line in buffer.getvalue().splitlines() if "file_ready" in line]
    assert len(ready_lines) == len(names)
