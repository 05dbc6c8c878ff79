"""Observer choice from the mount table: polling on network filesystems, native elsewhere, and why."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transcribed.inbox.mounts import choose_observer, is_network_filesystem, mount_for, parse_mount_table

TABLE = "\n".join([
    "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw",
    "30 22 0:40 / /srv/nas rw,relatime shared:5 - nfs4 nas:/export/media rw,vers=4.2",
    "31 22 0:41 / /srv/smb rw,relatime - cifs //box/share rw",
    "32 22 0:42 / /home/me/remote rw,nosuid - fuse.sshfs me@host:/data rw",
    "33 22 8:17 / /mnt/usb rw - fuseblk /dev/sdb1 rw",
    r"34 22 0:43 / /srv/with\040space rw - nfs server:/x rw",
    "35 30 0:44 / /srv/nas/local rw - tmpfs tmpfs rw",
    "garbage line without separator",
])


@pytest.mark.parametrize(("path", "mode", "words"), [
    ("/srv/inbox", "native", "ext4"),
    ("/srv/nas", "polling", "nfs4"),
    ("/srv/nas/inbox/deeper", "polling", "nfs4"),
    ("/srv/nas/local/inbox", "native", "tmpfs"),
    ("/srv/nasty", "native", "ext4"),                # a prefix of a name is not a parent folder
    ("/srv/smb/inbox", "polling", "cifs"),
    ("/home/me/remote/in", "polling", "fuse.sshfs"),
    ("/mnt/usb/in", "native", "fuseblk"),
    ("/srv/with space/in", "polling", "/srv/with space"),
])
def test_auto_picks_polling_on_network_filesystems_and_says_why(path: str, mode: str, words: str) -> None:
    chosen, reason = choose_observer("auto", path, TABLE)
    assert chosen == mode
    assert words in reason


def test_an_explicit_setting_wins() -> None:
    assert choose_observer("native", "/srv/nas", TABLE) == ("native", "set by inbox.observer")
    assert choose_observer("polling", "/srv/inbox", TABLE) == ("polling", "set by inbox.observer")


def test_no_mount_table_means_native_with_a_reason() -> None:
    mode, reason = choose_observer("auto", "/srv/inbox", None)
    assert mode == "native" and "unreadable" in reason


def test_the_last_mount_on_a_point_is_the_visible_one() -> None:
    table = "1 0 0:1 / /srv rw - ext4 /dev/a rw\n2 1 0:2 / /srv rw - nfs h:/x rw"
    mount = mount_for("/srv/in", parse_mount_table(table))
    assert mount is not None and mount.filesystem == "nfs"


@pytest.mark.parametrize("filesystem", ["nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs",
                                        "davfs", "fuse.sshfs", "fuse.rclone", "virtiofs"])
def test_network_filesystems(filesystem: str) -> None:
    assert is_network_filesystem(filesystem)


@pytest.mark.parametrize("filesystem", ["ext4", "xfs", "btrfs", "zfs", "tmpfs", "overlay", "fuseblk"])
def test_local_filesystems(filesystem: str) -> None:
    assert not is_network_filesystem(filesystem)


@given(st.text())
def test_any_table_text_parses_without_raising(text: str) -> None:
    mounts = parse_mount_table(text)
    mount_for("/srv/inbox", mounts)
    assert choose_observer("auto", "/srv/inbox", text)[0] in ("native", "polling")
