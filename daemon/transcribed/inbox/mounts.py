"""Which observer suits a folder: native events on local filesystems, polling on network ones.

inotify only reports changes made through this kernel, so on NFS, SMB, FUSE shares and the like, files
written by other machines never raise an event. Those are found in /proc/self/mountinfo. Parsing and the
decision are pure; `read_mount_table` is the one read.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

# Filesystem types whose changes may come from elsewhere than this kernel (any "fuse.*" type as well).
NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "ncpfs", "ncp", "afs", "openafs", "coda",
    "ceph", "cephfs", "glusterfs", "gfs2", "ocfs2", "lustre", "gpfs", "beegfs", "orangefs", "pvfs2",
    "moosefs", "9p", "v9fs", "virtiofs", "vboxsf", "vmhgfs", "prl_fs", "davfs", "davfs2", "sshfs", "fuse",
})
# FUSE types backed by a local block device: every change goes through this kernel.
LOCAL_FUSE = frozenset({"fuseblk"})

_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True, slots=True)
class Mount:
    mount_point: str
    filesystem: str
    source: str


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040 ...)."""
    return _ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def parse_mount_table(text: str) -> list[Mount]:
    """Parse /proc/self/mountinfo text; malformed lines are skipped, never raised on."""
    mounts: list[Mount] = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            separator = fields.index("-", 6)
        except ValueError:
            continue
        if len(fields) < separator + 3:
            continue
        mounts.append(Mount(_unescape(fields[4]), _unescape(fields[separator + 1]),
                            _unescape(fields[separator + 2])))
    return mounts


def mount_for(path: str, mounts: list[Mount]) -> Mount | None:
    """The mount holding absolute `path`: the longest mount point that is `path` or an ancestor of it.
    Of several mounts on the same point, the last listed is the visible one."""
    best: Mount | None = None
    for mount in mounts:
        point = mount.mount_point
        inside = path == point or point == "/" or path.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best.mount_point)):
            best = mount
    return best


def is_network_filesystem(filesystem: str) -> bool:
    """True for filesystem types where native change events miss changes made elsewhere."""
    if filesystem in LOCAL_FUSE:
        return False
    return filesystem in NETWORK_FILESYSTEMS or filesystem.startswith("fuse.")


def choose_observer(configured: str, path: str, mount_table: str | None) -> tuple[str, str]:
    """Return ("native" | "polling", reason) for the folder at absolute, resolved `path`.

    `configured` is inbox.observer ("auto" | "native" | "polling"); `mount_table` is the mountinfo text
    (None when it could not be read).
    """
    if configured in ("native", "polling"):
        return configured, "set by inbox.observer"
    if mount_table is None:
        return "native", "mount table unreadable; assuming a local filesystem"
    mount = mount_for(path, parse_mount_table(mount_table))
    if mount is None:
        return "native", "no mount found for the folder; assuming a local filesystem"
    where = f"{mount.filesystem} filesystem mounted at {mount.mount_point}"
    if is_network_filesystem(mount.filesystem):
        return "polling", f"{where}: changes made on other machines raise no native events"
    return "native", f"{where}: local, native events see every change"


def read_mount_table() -> str | None:
    """The text of /proc/self/mountinfo, or None where there is none (not Linux, no /proc)."""
    try:
        return Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return None


def resolved(path: Path) -> str:
    """The absolute path with symlinks resolved, as a str (undecodable bytes kept as surrogates)."""
    return os.path.realpath(os.fspath(path))
