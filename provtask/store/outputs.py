"""Stored outputs read back: an artifact's value after its integrity check, a task's output
(a map's as the list of its elements' outputs, in element order)."""

from __future__ import annotations

import sqlite3
from typing import Any

from ..errors import NotFoundError
from .artifacts import ArtifactFiles, check_hash, load_verified


def load_artifact(conn: sqlite3.Connection, files: ArtifactFiles, hash_: str) -> Any:
    """The value of an artifact, after checking its bytes against the hash."""
    check_hash(hash_)
    row = conn.execute("SELECT path, data FROM artifacts WHERE hash = ?", (hash_,)).fetchone()
    if row is None:
        raise NotFoundError(f"no artifact {hash_[:12]}… in {files.root}")
    path, data = row
    if data is None:
        data = files.read(path)
    return load_verified(data, hash_)


def task_output(
    conn: sqlite3.Connection, files: ArtifactFiles, run_id: str, task_id: str, partial: bool
) -> Any:
    """The output of task ``task_id`` of run ``run_id``; see :meth:`Store.output`."""
    row = conn.execute(
        "SELECT kind, state, output_hash FROM tasks WHERE run_id = ? AND task_id = ?",
        (run_id, task_id),
    ).fetchone()
    if row is None:
        raise NotFoundError(f"run {run_id} has no task {task_id!r}")
    kind, state, output_hash = row
    if kind == "map":
        return _map_output(conn, files, run_id, task_id, partial)
    if output_hash is None:
        raise NotFoundError(f"task {task_id!r} of run {run_id} has no output (state {state})")
    return load_artifact(conn, files, output_hash)


def _map_output(
    conn: sqlite3.Connection, files: ArtifactFiles, run_id: str, task_id: str, partial: bool
) -> list[Any]:
    children = conn.execute(
        "SELECT task_id, state, output_hash, error FROM tasks "
        # By element index: rows of one batch are not inserted in element order.
        "WHERE run_id = ? AND parent = ? "
        "ORDER BY CAST(substr(task_id, length(parent) + 2) AS INTEGER)",
        (run_id, task_id),
    ).fetchall()
    missing = [(child, state) for child, state, digest, _ in children if digest is None]
    if missing and not partial:
        child, child_state = missing[0]
        raise NotFoundError(
            f"{len(missing)} of the {len(children)} elements of {task_id!r} in run "
            f"{run_id} have no output ({child!r}: {child_state}); pass partial=True "
            "for what the others produced"
        )
    from ..partial import Failed

    return [
        load_artifact(conn, files, digest) if digest else Failed(child, state, error)
        for child, state, digest, error in children
    ]
