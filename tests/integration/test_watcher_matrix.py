"""The real watcher on tmp_path, in every mode: native / polling x flat / recursive, plus "events lost"
(observers off, rescans only). Every scenario must give the same result in every mode (RELIABILITY R5,
R6, S6). Absence is checked with a sentinel file dropped afterwards: once it is handed on, everything
dropped before it has been looked at."""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from transcribed.config import InboxConfig
from transcribed.inbox.watcher import VERIFY_SLICES, ReadyFile, Watcher

DEADLINE = 30.0
SETTLE = 0.4
MODES = ["native-flat", "native-recursive", "polling-flat", "polling-recursive", "lost-flat", "lost-recursive"]


@dataclass
class Recorder:
    ready: list[ReadyFile] = field(default_factory=list)
    problems: list[tuple[Path, str]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def on_ready(self, item: ReadyFile) -> None:
        with self.changed:
            self.ready.append(item)
            self.changed.notify_all()

    def on_problem(self, path: Path, reason: str) -> None:
        with self.changed:
            self.problems.append((path, reason))
            self.changed.notify_all()

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        with self.changed:
            if not self.changed.wait_for(condition, timeout=DEADLINE):
                pytest.fail(f"timed out waiting for {what}; ready={self.names()} problems={self.problems}")

    def names(self) -> list[str]:
        with self.changed:
            return [item.path.name for item in self.ready]

    def count(self, path: Path) -> int:
        with self.changed:
            return sum(1 for item in self.ready if item.path == path)


@dataclass
class Rig:
    inbox: Path
    outside: Path
    mode: str
    watcher: Watcher
    recorder: Recorder
    counter: Iterator[int] = field(default_factory=itertools.count)

    @property
    def recursive(self) -> bool:
        return self.mode.endswith("recursive")

    def wait_ready(self, path: Path) -> ReadyFile:
        self.recorder.wait_for(lambda: self.recorder.count(path) >= 1, f"{path.name} handed on")
        return next(item for item in self.recorder.ready if item.path == path)

    def sentinel(self) -> None:
        """Drop a fresh media file and wait for it: everything dropped earlier has been looked at."""
        path = self.inbox / f"zz-sentinel-{next(self.counter)}.mp3"
        path.write_bytes(b"sentinel")
        self.wait_ready(path)


def eventually(condition: Callable[[], bool], what: str) -> None:
    """Poll a condition nothing notifies about, until a generous deadline."""
    deadline, pause = time.monotonic() + DEADLINE, threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        pause.wait(0.02)


def config_for(mode: str, inbox: Path, **overrides: object) -> InboxConfig:
    observer = "polling" if mode.startswith("polling") else "native"
    values: dict[str, object] = {
        "paths": (inbox,), "recursive": mode.endswith("recursive"), "settle_seconds": SETTLE,
        "settle_timeout_seconds": 30.0, "observer": observer, "polling_interval_seconds": 0.1,
        # with observers on, rescans stay out of the way so that events alone must do the job
        "rescan_seconds": 0.3 if mode.startswith("lost") else 600.0,
    }
    values.update(overrides)
    return InboxConfig(**values)  # type: ignore[arg-type]


@contextmanager
def running(mode: str, tmp_path: Path, **overrides: object) -> Iterator[Rig]:
    inbox, outside = tmp_path / "inbox", tmp_path / "outside"
    inbox.mkdir(exist_ok=True)
    outside.mkdir(exist_ok=True)
    recorder = Recorder()
    watcher = Watcher(config_for(mode, inbox, **overrides), recorder.on_ready, on_problem=recorder.on_problem,
                      _observe=not mode.startswith("lost"))
    watcher.start()
    try:
        assert watcher.wait_started(DEADLINE)
        yield Rig(inbox, outside, mode, watcher, recorder)
    finally:
        watcher.stop()


@pytest.fixture(params=MODES)
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    with running(request.param, tmp_path) as rig:
        yield rig


def test_observer_modes_are_reported(rig: Rig) -> None:
    expected = {"native": "native", "polling": "polling", "lost": "off"}[rig.mode.split("-")[0]]
    assert rig.watcher.observer_modes() == {rig.inbox: expected}


def test_new_file_is_handed_on_once_with_its_stat(rig: Rig) -> None:
    path = rig.inbox / "talk.mp3"
    path.write_bytes(b"x" * 1234)
    item = rig.wait_ready(path)
    status = path.stat()
    assert (item.root, item.size, item.inode, item.device, item.mtime_ns) == (
        rig.inbox, 1234, status.st_ino, status.st_dev, status.st_mtime_ns)
    rig.sentinel()
    assert rig.recorder.count(path) == 1


def test_moved_in_file_is_handed_on(rig: Rig) -> None:
    source = rig.outside / "moved.wav"
    source.write_bytes(b"w" * 500)
    source.rename(rig.inbox / "moved.wav")
    assert rig.wait_ready(rig.inbox / "moved.wav").size == 500


def test_a_file_written_slowly_is_handed_on_only_when_complete(rig: Rig) -> None:
    path = rig.inbox / "recording.wav"
    pause = threading.Event()
    with path.open("wb") as recorder_output:
        for _ in range(40):   # 2 s of writing, a chunk every 0.05 s (well inside the 0.4 s settle time)
            recorder_output.write(b"r" * 4096)
            recorder_output.flush()
            pause.wait(0.05)
    item = rig.wait_ready(path)
    assert item.size == 40 * 4096
    rig.sentinel()
    assert rig.recorder.count(path) == 1


def test_temporary_name_then_rename(rig: Rig) -> None:
    partial = rig.inbox / "download.mp4.part"
    partial.write_bytes(b"p" * 2048)
    partial.rename(rig.inbox / "download.mp4")
    assert rig.wait_ready(rig.inbox / "download.mp4").size == 2048
    rig.sentinel()
    assert not [name for name in rig.recorder.names() if name.endswith(".part")]


JUNK = [".DS_Store", "Thumbs.db", "desktop.ini", "._talk.mp3", ".hidden.mp3", "talk.mp3.part", "x.crdownload",
        "~$talk.mp3", "talk.mp3.!qB", "talk.mp3.filepart", ".syncthing.talk.mp3.tmp", "talk.txt", "talk.srt",
        "talk.vtt", "talk.json", ".talk.srt.transcribed-tmp-1234", "notes.pdf"]


def test_junk_and_temporary_names_are_never_handed_on(rig: Rig) -> None:
    for name in JUNK:
        (rig.inbox / name).write_bytes(b"junk")
    for folder in ("@eaDir", "#recycle", ".stversions", "__MACOSX"):
        (rig.inbox / folder).mkdir()
        (rig.inbox / folder / "inside.mp3").write_bytes(b"junk")
    rig.sentinel()
    assert [name for name in rig.recorder.names() if not name.startswith("zz-sentinel")] == []


def test_more_events_for_a_handed_on_file_do_not_hand_it_on_again(rig: Rig) -> None:
    path = rig.inbox / "again.mp3"
    path.write_bytes(b"a" * 100)
    rig.wait_ready(path)
    status = path.stat()
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))      # attrib event, same version
    os.chmod(path, 0o640)
    with path.open("ab"):                                              # close-after-write, nothing written
        pass
    rig.watcher.rescan()
    rig.sentinel()
    assert rig.recorder.count(path) == 1


def test_a_new_version_of_a_handed_on_file_is_handed_on_again(rig: Rig) -> None:
    path = rig.inbox / "edited.mp3"
    path.write_bytes(b"a" * 100)
    rig.wait_ready(path)
    with path.open("ab") as output:
        output.write(b"more")
    rig.recorder.wait_for(lambda: rig.recorder.count(path) == 2, "second version handed on")
    assert [item.size for item in rig.recorder.ready if item.path == path] == [100, 104]


def test_a_file_deleted_before_it_settled_is_dropped_quietly(rig: Rig) -> None:
    path = rig.inbox / "gone.mp3"
    path.write_bytes(b"g" * 100)
    path.unlink()
    rig.sentinel()
    assert rig.recorder.count(path) == 0
    assert rig.recorder.problems == []


def test_a_new_subfolder_with_files(rig: Rig) -> None:
    folder = rig.inbox / "day1" / "morning"
    folder.mkdir(parents=True)
    for name in ("a.mp3", "b.flac"):
        (folder / name).write_bytes(b"s" * 10)
    rig.sentinel()
    if rig.recursive:
        rig.recorder.wait_for(lambda: rig.recorder.count(folder / "a.mp3") == 1
                              and rig.recorder.count(folder / "b.flac") == 1, "both subfolder files")
    else:
        assert rig.recorder.count(folder / "a.mp3") == rig.recorder.count(folder / "b.flac") == 0


def test_a_folder_moved_in_with_everything_in_it(rig: Rig) -> None:
    tree = rig.outside / "batch"
    (tree / "deeper").mkdir(parents=True)
    files = [tree / "one.mp3", tree / "two.wav", tree / "deeper" / "three.m4a"]
    for path in files:
        path.write_bytes(b"b" * 64)
    tree.rename(rig.inbox / "batch")
    expected = [rig.inbox / path.relative_to(rig.outside) for path in files]
    rig.sentinel()
    if rig.recursive:
        rig.recorder.wait_for(lambda: all(rig.recorder.count(path) == 1 for path in expected), "moved tree")
        rig.watcher.rescan()
        rig.sentinel()
        assert [rig.recorder.count(path) for path in expected] == [1, 1, 1]
    else:
        assert [rig.recorder.count(path) for path in expected] == [0, 0, 0]


def test_a_fifo_never_blocks_and_is_skipped(rig: Rig) -> None:
    fifo = rig.inbox / "pipe.mp3"
    os.mkfifo(fifo)
    rig.watcher.rescan()
    rig.sentinel()
    assert rig.recorder.count(fifo) == 0


def test_a_directory_named_like_media_is_a_folder(rig: Rig) -> None:
    folder = rig.inbox / "album.mp3"
    folder.mkdir()
    (folder / "track.wav").write_bytes(b"t" * 10)
    rig.sentinel()
    assert rig.recorder.count(folder) == 0
    if rig.recursive:
        rig.wait_ready(folder / "track.wav")


def test_a_symlink_out_of_the_inbox_is_reported_once_never_followed(rig: Rig) -> None:
    target = rig.outside / "secret.mp3"
    target.write_bytes(b"s" * 10)
    (rig.outside / "dir").mkdir()
    (rig.outside / "dir" / "deep.mp3").write_bytes(b"d")
    link = rig.inbox / "link.mp3"
    link.symlink_to(target)
    (rig.inbox / "linked-dir").symlink_to(rig.outside / "dir")
    rig.recorder.wait_for(lambda: any(path == link for path, _ in rig.recorder.problems), "link reported")
    rig.watcher.rescan()
    rig.watcher.rescan()
    rig.sentinel()
    assert [path for path, _ in rig.recorder.problems].count(link) == 1
    assert rig.recorder.count(link) == 0
    assert not [name for name in rig.recorder.names() if name in ("secret.mp3", "deep.mp3")]


def test_a_symlink_inside_the_inbox_is_not_a_second_copy(rig: Rig) -> None:
    target = rig.inbox / "real.mp3"
    target.write_bytes(b"r" * 10)
    (rig.inbox / "alias.mp3").symlink_to(target)
    rig.wait_ready(target)
    rig.sentinel()
    assert rig.recorder.count(rig.inbox / "alias.mp3") == 0
    assert rig.recorder.problems == []


def test_an_ignore_marker_skips_the_folder_and_everything_below(rig: Rig) -> None:
    if not rig.recursive:
        pytest.skip("subfolders are never entered in flat mode")
    folder = rig.inbox / "private"
    (folder / "deeper").mkdir(parents=True)
    (folder / ".transcribed-ignore").write_bytes(b"")
    (folder / "a.mp3").write_bytes(b"a")
    (folder / "deeper" / "b.mp3").write_bytes(b"b")
    rig.watcher.rescan()
    rig.sentinel()
    assert not [item for item in rig.recorder.ready if folder in item.path.parents]


def test_files_present_at_start_are_handed_on(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "sub").mkdir(parents=True)
    (inbox / "early.mp3").write_bytes(b"e")
    (inbox / "sub" / "early.wav").write_bytes(b"e")
    with running("native-recursive", tmp_path) as rig:
        rig.wait_ready(inbox / "early.mp3")
        rig.wait_ready(inbox / "sub" / "early.wav")


@pytest.mark.parametrize("mode", ["native-recursive", "polling-recursive", "lost-recursive"])
def test_stop_while_events_are_pending(mode: str, tmp_path: Path) -> None:
    with running(mode, tmp_path) as rig:
        for index in range(50):
            (rig.inbox / f"pending-{index}.mp3").write_bytes(b"p")
        rig.watcher.stop()
        after_stop = len(rig.recorder.ready)
        (rig.inbox / "after.mp3").write_bytes(b"a")
        rig.watcher.rescan()   # posts to a stopped worker: nothing may come of it
    assert len(rig.recorder.ready) == after_stop
    assert rig.recorder.count(rig.inbox / "after.mp3") == 0


@pytest.mark.parametrize("mode", ["native-flat", "polling-flat", "lost-flat"])
def test_a_file_that_never_settles_is_reported_not_handed_on(mode: str, tmp_path: Path) -> None:
    with running(mode, tmp_path, settle_timeout_seconds=1.0) as rig:
        path = rig.inbox / "endless.wav"
        pause = threading.Event()
        with path.open("wb") as output:
            output.write(b"e")
            output.flush()
            deadline = time.monotonic() + DEADLINE
            while not rig.recorder.problems and time.monotonic() < deadline:
                output.write(b"e" * 1024)
                output.flush()
                pause.wait(0.05)
            assert rig.recorder.count(path) == 0
        assert [(problem, "still changing" in reason) for problem, reason in rig.recorder.problems] == [
            (path, True)]


@pytest.mark.parametrize("mode", ["native-flat", "native-recursive"])
def test_close_after_write_and_moves_do_not_wait_for_the_settle_time(mode: str, tmp_path: Path) -> None:
    """With a settle time far beyond the deadline, only the fast path can hand these on."""
    with running(mode, tmp_path, settle_seconds=3600.0) as rig:
        closed = rig.inbox / "closed.mp3"
        closed.write_bytes(b"c" * 100)
        source = rig.outside / "moved.mp3"
        source.write_bytes(b"m" * 100)
        source.rename(rig.inbox / "moved.mp3")
        renamed = rig.inbox / "renamed.mp3.part"
        renamed.write_bytes(b"r" * 100)
        renamed.rename(rig.inbox / "renamed.mp3")
        for path in (closed, rig.inbox / "moved.mp3", rig.inbox / "renamed.mp3"):
            rig.wait_ready(path)


def test_a_reopened_file_is_handed_on_once_at_its_final_size(tmp_path: Path) -> None:
    with running("native-flat", tmp_path, settle_seconds=3600.0) as rig:
        path = rig.inbox / "reopened.wav"
        path.write_bytes(b"1" * 100)            # close-after-write ...
        pause = threading.Event()
        with path.open("ab") as output:          # ... then reopened at once and written for a while
            for _ in range(10):
                output.write(b"2" * 100)
                output.flush()
                pause.wait(0.02)
        rig.recorder.wait_for(lambda: rig.recorder.count(path) >= 1, "reopened file handed on")
        rig.sentinel()
        assert [item.size for item in rig.recorder.ready if item.path == path] == [1100]


def test_auto_chooses_polling_on_a_network_share_and_still_works(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    table = f"1 0 0:1 / / rw - ext4 /dev/vda rw\n2 1 0:2 / {os.path.realpath(inbox)} rw - nfs4 nas:/media rw\n"
    recorder = Recorder()
    watcher = Watcher(config_for("polling-flat", inbox, observer="auto"), recorder.on_ready,
                      _mount_table=table)
    watcher.start()
    try:
        assert watcher.wait_started(DEADLINE)
        assert watcher.observer_modes() == {inbox: "polling"}
        assert "nfs4" in watcher.observer_reasons()[inbox]
        (inbox / "remote.mp3").write_bytes(b"n")
        recorder.wait_for(lambda: recorder.count(inbox / "remote.mp3") == 1, "file on the share")
    finally:
        watcher.stop()


def test_a_missing_inbox_is_watched_once_it_exists(tmp_path: Path) -> None:
    inbox = tmp_path / "later"
    recorder = Recorder()
    watcher = Watcher(config_for("native-flat", inbox, observer="auto", rescan_seconds=0.2), recorder.on_ready)
    watcher.start()
    try:
        assert watcher.wait_started(DEADLINE)
        assert watcher.observer_modes() == {inbox: "none"}
        inbox.mkdir()
        eventually(lambda: watcher.observer_modes() == {inbox: "native"}, "watch started")
        (inbox / "late.mp3").write_bytes(b"l")
        recorder.wait_for(lambda: recorder.count(inbox / "late.mp3") == 1, "file in the late inbox")
    finally:
        watcher.stop()


def test_a_failing_callback_does_not_stop_the_watcher(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    recorder = Recorder()

    def flaky(item: ReadyFile) -> None:
        recorder.on_ready(item)
        if item.path.name == "first.mp3":
            raise RuntimeError("pipeline bug")

    watcher = Watcher(config_for("native-flat", inbox), flaky)
    watcher.start()
    try:
        assert watcher.wait_started(DEADLINE)
        (inbox / "first.mp3").write_bytes(b"1")
        recorder.wait_for(lambda: recorder.count(inbox / "first.mp3") == 1, "first")
        (inbox / "second.mp3").write_bytes(b"2")
        recorder.wait_for(lambda: recorder.count(inbox / "second.mp3") == 1, "second")
    finally:
        watcher.stop()


def test_a_watched_folder_swapped_for_a_symlink_out_is_not_followed(rig: Rig) -> None:
    folder = rig.inbox / "sub"
    folder.mkdir()
    (folder / "before.mp3").write_bytes(b"b")
    if rig.recursive:
        rig.wait_ready(folder / "before.mp3")
    folder.rename(rig.outside / "sub")            # the old watch may still be on this folder ...
    folder.symlink_to(rig.outside / "sub")        # ... and its old path now leads outside
    (rig.outside / "sub" / "escaped.mp3").write_bytes(b"e" * 10)
    rig.recorder.wait_for(lambda: any(path == folder for path, _ in rig.recorder.problems), "link reported")
    rig.watcher.rescan()
    rig.sentinel()
    assert rig.recorder.count(folder / "escaped.mp3") == 0


# ---- rescans and lost events ---------------------------------------------------------------------------
# A write through a hard link that lies outside the inbox changes a known file in place while the inbox's
# watch reports nothing: the events for it are lost, as after an inotify queue overflow.

def _rewrite_unseen(rig: Rig, path: Path, data: bytes) -> None:
    """Rewrite `path` in place (same inode) through a hard link outside the inbox; check that no event
    reported it."""
    link = rig.outside / f"link-{next(rig.counter)}.bin"
    os.link(path, link)
    link.write_bytes(data)
    link.unlink()
    rig.sentinel()
    assert rig.recorder.count(path) == 1, "the rewrite was reported by an event: the premise does not hold"


@pytest.mark.parametrize("mode", ["native-flat", "native-recursive"])
def test_a_rewrite_the_events_missed_is_found_within_a_round_of_rescans(mode: str, tmp_path: Path) -> None:
    with running(mode, tmp_path) as rig:
        path = rig.inbox / "rewritten.mp3"
        path.write_bytes(b"a" * 100)
        rig.wait_ready(path)
        _rewrite_unseen(rig, path, b"b" * 150)
        for _ in range(VERIFY_SLICES):
            rig.watcher.rescan()
        rig.recorder.wait_for(lambda: rig.recorder.count(path) == 2, "the rewrite found by the rescans")
        assert [item.size for item in rig.recorder.ready if item.path == path] == [100, 150]


def test_lost_events_reported_by_watchdog_start_a_full_rescan_at_once(tmp_path: Path) -> None:
    with running("native-recursive", tmp_path) as rig:
        path = rig.inbox / "deep" / "rewritten.mp3"
        path.parent.mkdir()
        path.write_bytes(b"a" * 100)
        rig.wait_ready(path)
        _rewrite_unseen(rig, path, b"c" * 120)
        # what watchdog's inotify emitter logs when the kernel reports IN_Q_OVERFLOW
        logging.getLogger("watchdog.observers.inotify_c").warning(
            "Inotify queue overflowed; filesystem events were lost")
        rig.recorder.wait_for(lambda: rig.recorder.count(path) == 2, "the rewrite found with no rescan asked")


@pytest.mark.skipif(not os.access("/proc/sys/fs/inotify/max_queued_events", os.W_OK),
                    reason="needs root to shrink the kernel's inotify queue")
def test_a_real_inotify_queue_overflow_is_recovered(tmp_path: Path) -> None:
    """The kernel's own overflow: the queue limit is read when an inotify instance is made, so the watcher
    starts with a tiny queue (the limit is restored at once), then a burst of files overflows it."""
    setting = Path("/proc/sys/fs/inotify/max_queued_events")
    saved = setting.read_text()
    try:
        setting.write_text("8")
        rig_context = running("native-recursive", tmp_path)
        rig = rig_context.__enter__()
    finally:
        setting.write_text(saved)
    try:
        path = rig.inbox / "known.mp3"
        path.write_bytes(b"a" * 100)
        rig.wait_ready(path)
        link = rig.outside / "known-link.bin"
        os.link(path, link)
        link.write_bytes(b"d" * 130)             # in place, never reported by an event ...
        burst = rig.inbox / "burst"              # ... and then the overflow: a rescan must follow it
        burst.mkdir()
        for index in range(400):
            (burst / f"b{index:03d}.mp3").write_bytes(b"x")
        rig.recorder.wait_for(lambda: rig.recorder.count(path) == 2, "the rewrite found after the overflow")
        rig.recorder.wait_for(lambda: sum(1 for item in rig.recorder.ready if item.path.parent == burst) == 400,
                              "every file of the burst handed on")
    finally:
        rig_context.__exit__(None, None, None)


@pytest.mark.skipif(not os.access("/proc/sys/fs/inotify/max_user_watches", os.W_OK),
                    reason="needs root to lower the kernel's inotify watch limit")
def test_auto_falls_back_to_polling_when_the_inotify_watch_limit_is_reached(tmp_path: Path) -> None:
    """The limit is checked when a watch is added, so it is lowered only while the watcher starts."""
    inbox = tmp_path / "inbox"
    for index in range(4):
        (inbox / f"sub{index}").mkdir(parents=True)
    setting = Path("/proc/sys/fs/inotify/max_user_watches")
    saved = setting.read_text()
    recorder = Recorder()
    watcher = Watcher(config_for("native-recursive", inbox, observer="auto"), recorder.on_ready)
    try:
        setting.write_text("1")
        watcher.start()
        started = watcher.wait_started(DEADLINE)
    finally:
        setting.write_text(saved)
    try:
        assert started
        assert watcher.observer_modes() == {inbox: "polling"}
        assert watcher.observer_reasons()[inbox] == "native events unavailable for this folder"
        (inbox / "sub2" / "late.mp3").write_bytes(b"late")
        recorder.wait_for(lambda: recorder.count(inbox / "sub2" / "late.mp3") == 1, "file seen by polling")
    finally:
        watcher.stop()
