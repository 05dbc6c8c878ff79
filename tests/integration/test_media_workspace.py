"""Extract folders never outlive their use: removed after success and failure, leftovers of a crashed
(killed) run swept at the next start, and a folder another process is using is never swept."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from transcribed.config import MediaConfig
from transcribed.media import Workspace
from transcribed.media.workspace import PREFIX

HOLDER = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from transcribed.config import MediaConfig
    from transcribed.media import Workspace
    workspace = Workspace(MediaConfig(temp_directory=Path(sys.argv[1])), "film-key")
    (workspace.path() / "film.ogg").write_bytes(b"OggS" * 1000)
    print(workspace.path(), flush=True)
    if sys.argv[2] == "crash":
        os._exit(9)
    sys.stdin.readline()
    workspace.close()
""")


def holder(base: Path, mode: str) -> tuple[subprocess.Popen[str], Path]:
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(base), mode], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    assert line, "the holder process printed no workspace"
    return process, Path(line)


def test_a_workspace_is_private_and_removed_after_success(tmp_path: Path) -> None:
    config = MediaConfig(temp_directory=tmp_path / "not yet there")
    with Workspace(config, "abc") as workspace:
        folder = workspace.path()
        assert folder.parent == tmp_path / "not yet there"
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        (folder / "talk.ogg").write_bytes(b"x")
    assert not folder.exists()
    workspace.close()   # a second close is harmless


def test_a_workspace_is_removed_after_a_failure(tmp_path: Path) -> None:
    config = MediaConfig(temp_directory=tmp_path)
    with pytest.raises(RuntimeError), Workspace(config, "abc") as workspace:
        (workspace.path() / "half.tmp").write_bytes(b"x")
        raise RuntimeError("upload failed")
    assert list(tmp_path.iterdir()) == []


def test_a_crashed_run_leaves_a_folder_the_next_start_sweeps(tmp_path: Path) -> None:
    process, folder = holder(tmp_path, "crash")
    assert process.wait(30) == 9
    assert (folder / "film.ogg").exists()
    assert Workspace.sweep(MediaConfig(temp_directory=tmp_path)) == 1
    assert not folder.exists()
    assert Workspace.sweep(MediaConfig(temp_directory=tmp_path)) == 0


def test_folders_in_use_are_never_swept(tmp_path: Path) -> None:
    config = MediaConfig(temp_directory=tmp_path)
    process, theirs = holder(tmp_path, "hold")
    try:
        with Workspace(config, "ours") as ours:
            assert Workspace.sweep(config) == 0
            assert theirs.exists() and ours.path().exists()
    finally:
        assert process.stdin is not None
        process.stdin.close()
        assert process.wait(30) == 0
    assert list(tmp_path.iterdir()) == []


def test_only_this_users_leftovers_with_the_prefix_are_swept(tmp_path: Path) -> None:
    config = MediaConfig(temp_directory=tmp_path)
    other = tmp_path / "someone-elses"
    other.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    (tmp_path / f"{PREFIX}link").symlink_to(target)
    just_made = tmp_path / f"{PREFIX}being-created"
    just_made.mkdir()                                  # a workspace between mkdtemp and its lock
    stale = tmp_path / f"{PREFIX}no-lock"
    stale.mkdir()
    old = time.time() - 3600
    os.utime(stale, (old, old))
    assert Workspace.sweep(config) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["someone-elses", "target", f"{PREFIX}link", f"{PREFIX}being-created"])


def test_names_cannot_lead_out_of_the_temp_folder(tmp_path: Path) -> None:
    with Workspace(MediaConfig(temp_directory=tmp_path), "../../etc/\nx") as workspace:
        assert workspace.path().parent == tmp_path
        assert "\n" not in workspace.path().name


def test_sweeping_a_missing_temp_folder_finds_nothing(tmp_path: Path) -> None:
    assert Workspace.sweep(MediaConfig(temp_directory=tmp_path / "absent")) == 0
