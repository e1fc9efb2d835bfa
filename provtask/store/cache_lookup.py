"""Finding cached outputs: successful attempts of earlier tasks with the same cache key.

A source is only used when its artifact is still there and its bytes still match their
hash. A file artifact is checked through a digest memo (path, size, mtime, inode), so an
unchanged file is read once, not at every run; a changed file is read again.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ..hashing import PathMemo
from .artifacts import ArtifactFiles, digest

_CHUNK = 500  # keys per query (SQLite limits the number of parameters)
_COLUMNS = "t.cache_key, a.run_id, a.task_id, a.attempt, a.output_hash, a.n_items, f.path, f.data"
_SOURCES = (
    f"SELECT {_COLUMNS}, a.ended_at FROM tasks t "
    "JOIN attempts a ON a.run_id = t.run_id AND a.task_id = t.task_id "
    "JOIN artifacts f ON f.hash = a.output_hash "
    "WHERE a.status = 'success' AND t.cache_key IN ({keys}) "
    f"UNION ALL SELECT {_COLUMNS}, a.ended_at FROM tasks t "
    "JOIN attempts a ON a.run_id = t.source_run AND a.task_id = t.source_task "
    "AND a.attempt = t.source_attempt JOIN artifacts f ON f.hash = a.output_hash "
    "WHERE t.cache = 'kept' AND a.status = 'success' AND t.cache_key IN ({keys}) "
    "ORDER BY 9 DESC"
)
_READ = 1 << 20


@dataclass(frozen=True)
class Source:
    """A successful attempt whose output can stand in for a task with the same key."""

    run_id: str
    task_id: str
    attempt: int
    output_hash: str
    n_items: int | None
    path: str | None  # relative to the store root, for file artifacts
    data: bytes | None  # the bytes of an inline artifact


def find_sources(conn: sqlite3.Connection, keys: list[str]) -> dict[str, Source]:
    """The newest successful attempt for each cache key that has one (one query per 500
    keys). Failed, lost and cancelled attempts are never sources. A task kept under new code
    (``keep=``) stands for its source attempt under its new key."""
    found: dict[str, Source] = {}
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), _CHUNK):
        chunk = unique[start : start + _CHUNK]
        rows = conn.execute(_SOURCES.format(keys=", ".join("?" * len(chunk))), chunk * 2)
        for key, *source, _ in rows.fetchall():
            found.setdefault(key, Source(*source))
    return found


def check_source(source: Source, files: ArtifactFiles, memo: PathMemo) -> str | None:
    """None if the source's artifact is intact; otherwise why it cannot be used."""
    label = f"artifact {source.output_hash[:12]}… (run {source.run_id}, task {source.task_id})"
    if source.data is not None:
        actual = digest(source.data)
    elif source.path is None:
        return f"{label} has neither bytes nor a file"
    else:
        path = files.root / source.path
        try:
            actual = file_digest(path, memo)
        except OSError as exc:
            return f"{label} cannot be read: {exc}"
    if actual != source.output_hash:
        return f"{label} is corrupted: its bytes hash to {actual[:12]}…"
    return None


def file_digest(path: Path, memo: PathMemo) -> str:
    """Hex BLAKE2b-256 of a file's bytes, remembered while the file is unchanged."""
    key = os.path.abspath(path)
    st = path.stat()
    known = memo.lookup(key, st)
    if known is not None:
        return known.hex()
    hasher = hashlib.blake2b(digest_size=32)
    with open(path, "rb") as file:
        while block := file.read(_READ):
            hasher.update(block)
    memo.remember(key, st, hasher.digest())
    return hasher.hexdigest()


def discard_corrupted(conn: sqlite3.Connection, files: ArtifactFiles, source: Source) -> None:
    """Remove a corrupted artifact, so that recomputing the task stores it afresh."""
    if source.path is not None:
        path = files.root / source.path
        if path.resolve().is_relative_to(files.root.resolve() / "artifacts"):
            path.unlink(missing_ok=True)
    else:
        conn.execute("DELETE FROM artifacts WHERE hash = ?", (source.output_hash,))
