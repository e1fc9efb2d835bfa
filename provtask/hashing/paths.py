"""Content digests of files and directories, with a memo so large files are read once.

A ``pathlib.Path`` value is identified by what it points to: a file by its bytes, a directory
by the sorted relative names and digests of everything under it. Symbolic links are followed;
a link whose target is missing is identified by the link's text, and a directory reached twice
through links on the same branch is an error. A path that does not exist is identified by its
text, marked as missing.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import threading
import time
from pathlib import Path

from ..errors import StoreError, UnhashableValue

_CHUNK = 1 << 20
_RECENT_NS = 2_000_000_000
"""A file modified less than 2 s ago may still change within its mtime tick: never memoised."""


class PathMemo:
    """File digests keyed by (absolute path, size, mtime_ns, inode), kept in a SQLite file.

    Pass one to ``value_hash(..., memo=...)``; a file whose key is unchanged is not read again.
    Safe to share between threads and processes (it pickles as its location).
    """

    def __init__(self, location: str | Path) -> None:
        self.location = Path(location)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def __reduce__(self) -> tuple:
        return (PathMemo, (self.location,))

    def __repr__(self) -> str:
        return f"PathMemo({str(self.location)!r})"

    def lookup(self, path: str, st: os.stat_result) -> bytes | None:
        """The remembered digest of the file at ``path`` if its key is unchanged."""
        with self._lock:
            row = (
                self._connection()
                .execute(
                    "SELECT digest FROM files WHERE path = ? AND size = ? AND mtime_ns = ? "
                    "AND inode = ?",
                    (path, st.st_size, st.st_mtime_ns, st.st_ino),
                )
                .fetchone()
            )
        return None if row is None else bytes(row[0])

    def remember(self, path: str, st: os.stat_result, digest: bytes) -> None:
        """Keep ``digest`` for this key, unless the file changed too recently to trust it."""
        if time.time_ns() - st.st_mtime_ns < _RECENT_NS:
            return
        with self._lock:
            self._connection().execute(
                "INSERT OR REPLACE INTO files (path, size, mtime_ns, inode, digest) "
                "VALUES (?, ?, ?, ?, ?)",
                (path, st.st_size, st.st_mtime_ns, st.st_ino, digest),
            )

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                self.location.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(
                    self.location, timeout=60, isolation_level=None, check_same_thread=False
                )
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, "
                    "mtime_ns INTEGER, inode INTEGER, digest BLOB)"
                )
            except (OSError, sqlite3.Error) as exc:
                raise StoreError(
                    f"cannot open the path memo {str(self.location)!r}: {exc}; check that its "
                    "directory is writable, or hash without a memo"
                ) from exc
            self._conn = conn
        return self._conn


def path_digest(path: Path, memo: PathMemo | None) -> bytes:
    """Raw BLAKE2b-256 of what ``path`` points to (see the module docstring)."""
    hasher = hashlib.blake2b(b"provtask-path\n", digest_size=32)
    _walk(path, memo, hasher, ancestors=())
    return hasher.digest()


def _walk(path: Path, memo: PathMemo | None, hasher, ancestors: tuple) -> None:
    try:
        st = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            hasher.update(_text(b"L", os.readlink(path)))
        else:
            hasher.update(_text(b"M", str(path)))
        return
    except OSError as exc:
        raise UnhashableValue(f"cannot read the path {str(path)!r}: {exc}") from None
    if stat.S_ISREG(st.st_mode):
        hasher.update(b"F" + _file_digest(path, st, memo))
    elif stat.S_ISDIR(st.st_mode):
        identity = (st.st_dev, st.st_ino)
        if identity in ancestors:
            raise UnhashableValue(
                f"the directory {str(path)!r} contains itself through a symbolic link"
            )
        try:
            names = sorted(entry.name for entry in os.scandir(path))
        except OSError as exc:
            raise UnhashableValue(f"cannot list the directory {str(path)!r}: {exc}") from None
        hasher.update(b"D%d{" % len(names))
        for name in names:
            hasher.update(_text(b"", name))
            _walk(path / name, memo, hasher, (*ancestors, identity))
        hasher.update(b"}")
    else:
        raise UnhashableValue(
            f"the path {str(path)!r} is neither a file nor a directory (a FIFO, socket or "
            "device), so it has no content to hash"
        )


def _file_digest(path: Path, st: os.stat_result, memo: PathMemo | None) -> bytes:
    key = os.path.abspath(path)
    if memo is not None and (known := memo.lookup(key, st)) is not None:
        return known
    hasher = hashlib.blake2b(digest_size=32)
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    try:
        with open(path, "rb", buffering=0) as file:
            while size := file.readinto(buffer):
                hasher.update(view[:size])
    except OSError as exc:
        raise UnhashableValue(f"cannot read the file {str(path)!r}: {exc}") from None
    digest = hasher.digest()
    if memo is not None:
        memo.remember(key, st, digest)
    return digest


def _text(tag: bytes, text: str) -> bytes:
    data = os.fsencode(text)
    return tag + b"%d:" % len(data) + data
