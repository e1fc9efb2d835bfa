"""Which filesystem holds the store's database, and a warning when it is a network one.

SQLite's locking relies on POSIX byte-range locks and, in WAL mode, on a shared-memory file;
NFS, Lustre, GPFS and their kin implement neither reliably across nodes, so two writers can
corrupt the database. provtask warns and says how to keep the database on local disk.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

DATABASE_ENV = "PROVTASK_DATABASE"
MOUNTS = Path("/proc/mounts")
NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "lustre",
        "gpfs",
        "cifs",
        "smb3",
        "smbfs",
        "beegfs",
        "ceph",
        "fuse.ceph",
        "glusterfs",
        "fuse.glusterfs",
        "fuse.sshfs",
        "panfs",
        "afs",
        "pvfs2",
        "orangefs",
        "wekafs",
        "9p",
    }
)
_warned: set[Path] = set()


class NetworkFilesystemWarning(UserWarning):
    """The store's database is on a filesystem where SQLite locking is unreliable."""


def _unescape(field: str) -> str:
    """Mount points in /proc/mounts escape spaces, tabs, newlines and backslashes in octal."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def filesystem_type(path: Path, mounts: Path | None = None) -> str | None:
    """The type (``ext4``, ``nfs4``, ``lustre``…) of the filesystem holding ``path``: the
    longest mount point containing it in ``mounts`` (default ``/proc/mounts``); None when
    that table cannot be read."""
    target = os.path.realpath(path)
    try:
        lines = (mounts or MOUNTS).read_text().splitlines()
    except OSError:
        return None
    best, best_type = "", None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = _unescape(fields[1])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, best_type = point, fields[2]
    return best_type


def network_warning(database: Path, mounts: Path | None = None) -> str | None:
    """Why the database at ``database`` is at risk, and what to do; None on a local disk."""
    kind = filesystem_type(database.parent, mounts)
    if kind is None or kind.lower() not in NETWORK_FILESYSTEMS:
        return None
    return (
        f"the provenance database {database} is on a {kind} filesystem, where SQLite's locking "
        "is unreliable: concurrent writers can corrupt it. Put the database on a local disk "
        f"with {DATABASE_ENV}=/local/path/provtask.db (the store folder, with its artifacts, "
        "can stay where it is: workers write only artifacts); see docs/reliability.md"
    )


def warn_if_network(database: Path) -> None:
    """Warn once per database and process when it lives on a network filesystem."""
    if database in _warned:
        return
    _warned.add(database)
    message = network_warning(database)
    if message is not None:
        warnings.warn(message, NetworkFilesystemWarning, stacklevel=3)
