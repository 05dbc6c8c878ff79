"""outputs/write.py when things go wrong: a crash between the temporary write and the rename, a full disk
(RLIMIT_FSIZE, and a tiny tmpfs), a read-only directory. Never a partial file at a visible name
(RELIABILITY.md R1, R11). Each failure runs in a child process, so the limits and mounts stay there.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from transcribed.config import OutputConfig
from transcribed.outputs.atomic import TEMPORARY_MARKER
from transcribed.outputs.render import Rendered
from transcribed.outputs.write import write_outputs

CHILD = textwrap.dedent(
    """
    import json, os, resource, sys
    from pathlib import Path
    from transcribed.config import OutputConfig
    from transcribed.outputs.render import Rendered
    from transcribed.outputs.write import OutputWriteError, write_outputs

    task = json.loads(Path(sys.argv[1]).read_text())
    if task.get("file_size_limit") is not None:
        limit = task["file_size_limit"]
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    if task.get("crash_before_rename"):
        os.replace = lambda *arguments: os._exit(17)
    rendered = [Rendered(*item) for item in task["rendered"]]
    directory = task.get("directory")
    config = OutputConfig(directory=Path(directory) if directory else None)
    ours = {Path(path): digest for path, digest in task.get("ours", {}).items()}
    outcome = {}
    try:
        report = write_outputs(Path(task["source"]), Path(task["inbox"]), rendered, config,
                               ours=ours, owner_of=lambda path: None)
        outcome["written"] = sorted(str(path) for path in report.written)
    except OutputWriteError as exc:
        outcome["errno"] = exc.errno
        outcome["written"] = sorted(str(path) for path in exc.report.written)
    folder = Path(task["look_in"])
    outcome["listing"] = {name: (folder / name).read_text() for name in sorted(os.listdir(folder))}
    print(json.dumps(outcome))
    """
)

SMALL = Rendered("txt", "en", "transcript", "small transcript\n")
BIG = Rendered("srt", "en", "transcript", "x" * 200_000)


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    (tmp_path / "inbox").mkdir()
    return tmp_path / "inbox"


@pytest.fixture
def source(inbox: Path) -> Path:
    path = inbox / "talk.mp3"
    path.write_bytes(b"audio")
    return path


def run_child(task: dict[str, Any], tmp_path: Path, wrapper: list[str] | None = None) -> tuple[int, dict[str, Any]]:
    script = tmp_path / "child.py"
    script.write_text(CHILD, encoding="utf-8")
    task = {**task, "rendered": [[item.format, item.language, item.kind, item.text] for item in task["rendered"]]}
    task_file = tmp_path / "task.json"
    task_file.write_text(json.dumps(task), encoding="utf-8")
    command = [*(wrapper or []), sys.executable, str(script), str(task_file)]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    outcome = json.loads(finished.stdout) if finished.stdout.strip() else {"stderr": finished.stderr}
    return finished.returncode, outcome


def test_a_crash_before_the_rename_leaves_the_old_file_and_only_a_hidden_temporary(
    tmp_path: Path, inbox: Path, source: Path
) -> None:
    first = write_outputs(source, inbox, [SMALL], OutputConfig(), ours={}, owner_of=lambda path: None)
    final = inbox / "talk.txt"
    newer = Rendered("txt", "en", "transcript", "a newer transcript that never lands\n")
    task = {"source": str(source), "inbox": str(inbox), "rendered": [newer, BIG], "look_in": str(inbox),
            "crash_before_rename": True, "ours": {str(path): value for path, value in first.written.items()}}
    returncode, _ = run_child(task, tmp_path)
    assert returncode == 17
    assert final.read_text(encoding="utf-8") == "small transcript\n"
    assert not (inbox / "talk.srt").exists()
    leftovers = [name for name in os.listdir(inbox) if TEMPORARY_MARKER in name]
    assert leftovers and all(name.startswith(".") for name in leftovers)  # hidden: the watcher ignores it
    # The next write for this source removes the stale temporary.
    write_outputs(source, inbox, [newer], OutputConfig(), ours=first.written, owner_of=lambda path: None)
    assert final.read_text(encoding="utf-8") == newer.text
    assert not [name for name in os.listdir(inbox) if TEMPORARY_MARKER in name]


def test_a_file_size_limit_raises_oserror_and_leaves_no_partial_file(
    tmp_path: Path, inbox: Path, source: Path
) -> None:
    task = {"source": str(source), "inbox": str(inbox), "rendered": [SMALL, BIG], "look_in": str(inbox),
            "file_size_limit": 50_000}
    returncode, outcome = run_child(task, tmp_path)
    assert returncode == 0, outcome
    assert outcome["errno"] == errno.EFBIG
    assert outcome["written"] == [str(inbox / "talk.txt")]  # durable before the failure, reported
    assert sorted(outcome["listing"]) == ["talk.mp3", "talk.txt"]  # no talk.srt, no temporary


def _namespace_wrapper(setup: str) -> list[str]:
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare is not available")
    probe = subprocess.run([unshare, "-r", "-m", "true"], capture_output=True, timeout=30, check=False)
    if probe.returncode != 0:
        pytest.skip("user and mount namespaces are not available here")
    return [unshare, "-r", "-m", "sh", "-c", f'{setup} && exec "$0" "$@"']


def test_a_full_filesystem_raises_oserror_and_leaves_no_partial_file(
    tmp_path: Path, inbox: Path, source: Path
) -> None:
    outputs = tmp_path / "transcripts"
    outputs.mkdir()
    wrapper = _namespace_wrapper(f"mount -t tmpfs -o size=64k tmpfs '{outputs}'")
    task = {"source": str(source), "inbox": str(inbox), "rendered": [SMALL, BIG], "look_in": str(outputs),
            "directory": str(outputs)}
    returncode, outcome = run_child(task, tmp_path, wrapper)
    assert returncode == 0, outcome
    assert outcome["errno"] == errno.ENOSPC
    assert outcome["written"] == [str(outputs / "talk.txt")]
    assert outcome["listing"] == {"talk.txt": SMALL.text}


def test_a_read_only_directory_raises_oserror_and_keeps_what_was_there(
    tmp_path: Path, inbox: Path, source: Path
) -> None:
    (inbox / "talk.txt").write_text("written by the user\n", encoding="utf-8")
    wrapper = _namespace_wrapper(f"mount --bind '{inbox}' '{inbox}' && mount -o remount,bind,ro '{inbox}'")
    task = {"source": str(source), "inbox": str(inbox), "rendered": [BIG], "look_in": str(inbox)}
    returncode, outcome = run_child(task, tmp_path, wrapper)
    assert returncode == 0, outcome
    assert outcome["errno"] == errno.EROFS
    assert outcome["written"] == []
    assert outcome["listing"] == {"talk.mp3": "audio", "talk.txt": "written by the user\n"}
