"""Parquet snapshots of finished runs' tasks and attempts: big runs read in a fraction of a second.

SQLite stays the source of truth. A snapshot is the very DataFrame ``Store.tasks(run)`` or
``Store.attempts(run)`` returns, written to ``snapshots/<run_id>/<table>.parquet`` by the
explicit step ``Store.snapshot(run)`` (which a run takes as it ends, when it has at least
``MIN_ROWS`` tasks), and recorded in the ``snapshots`` table with the run's revision, its row
count, the file's digest and the versions that wrote it. Every write to a run's tasks or
attempts through provtask bumps the run's revision (``revisions`` table) in the same
transaction. A snapshot is read only while all of it still holds; otherwise readers read
SQLite. Reading never writes.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ..states import RunStatus
from .artifacts import digest, write_atomically
from .schema import SCHEMA_VERSION

if TYPE_CHECKING:
    import pandas as pd

MIN_ROWS = 10_000  # smaller runs read from SQLite about as fast as from a file
FOLDER = "snapshots"
SNAPSHOT_TABLES = ("tasks", "attempts")
RUN_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")  # the run ids provtask makes: safe file names


def bump_revisions(conn: sqlite3.Connection, run_ids: Iterable[str]) -> None:
    """Mark runs' tasks and attempts as changed; call inside the transaction that changes them."""
    conn.executemany(
        "INSERT INTO revisions (run_id, revision) VALUES (?, 1) "
        "ON CONFLICT (run_id) DO UPDATE SET revision = revision + 1",
        [(run_id,) for run_id in run_ids],
    )


def load_snapshot(
    conn: sqlite3.Connection, root: Path, run_id: str, table: str
) -> pd.DataFrame | None:
    """The run's whole ``table`` from its snapshot while that is current and intact, else None."""
    return _load(conn, root, run_id, table)


def take_snapshot(
    conn: sqlite3.Connection, root: Path, run_id: str, table: str, query: Callable[[], pd.DataFrame]
) -> bool:
    """Snapshot ``query()`` (the run's whole ``table``) if the run is finished, big, and its
    snapshot is not current already; returns whether the table has a current snapshot."""
    if _load(conn, root, run_id, table) is not None:
        return True
    if not _finished(conn, run_id):
        return False
    (count,) = conn.execute(
        f'SELECT count(*) FROM "{table}" WHERE run_id = ?', (run_id,)
    ).fetchone()
    if count < MIN_ROWS:
        return False
    before = _revision(conn, run_id)
    frame = query()
    # Equal revisions around the query: no write to the run committed in between, so the
    # frame is the run at that revision.
    if _revision(conn, run_id) != before:
        return False
    return _save(conn, root, run_id, table, frame, before)


def _revision(conn: sqlite3.Connection, run_id: str) -> int:
    row = conn.execute("SELECT revision FROM revisions WHERE run_id = ?", (run_id,)).fetchone()
    return row[0] if row else 0


def _finished(conn: sqlite3.Connection, run_id: str) -> bool:
    row = conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return row is not None and row[0] != RunStatus.RUNNING.value


def _format() -> str:
    """What a snapshot's frame depends on besides the rows: a change rebuilds it."""
    import pandas as pd
    import pyarrow as pa

    return f"schema {SCHEMA_VERSION}, pandas {pd.__version__}, pyarrow {pa.__version__}"


def _load(conn: sqlite3.Connection, root: Path, run_id: str, table: str) -> pd.DataFrame | None:
    """The snapshot's frame if it is current and intact; None otherwise."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    row = conn.execute(
        "SELECT path, revision, rows, digest, format FROM snapshots "
        "WHERE run_id = ? AND table_name = ?",
        (run_id, table),
    ).fetchone()
    if row is None:
        return None
    path, revision, rows, recorded, made_by = row
    if revision != _revision(conn, run_id) or made_by != _format():
        return None
    (count,) = conn.execute(
        f'SELECT count(*) FROM "{table}" WHERE run_id = ?', (run_id,)
    ).fetchone()
    if count != rows:  # rows added or deleted without provtask
        return None
    try:
        data = (root / path).read_bytes()
        if digest(data) != recorded:
            return None
        frame = pq.read_table(pa.BufferReader(data)).to_pandas()
    except (OSError, pa.ArrowException):
        return None
    return frame if len(frame) == rows else None


def _save(
    conn: sqlite3.Connection,
    root: Path,
    run_id: str,
    table: str,
    frame: pd.DataFrame,
    revision: int,
) -> bool:
    """Write and record a snapshot (whether it could); a store that cannot take one is simply
    read from SQLite."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not RUN_ID.fullmatch(run_id):
        return False
    relative = f"{FOLDER}/{run_id}/{table}.parquet"
    try:
        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink, compression="zstd")
        data = sink.getvalue().to_pybytes()
        write_atomically(root / relative, data)
        conn.execute(
            "INSERT OR REPLACE INTO snapshots (run_id, table_name, path, revision, rows, digest, "
            "format, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, table, relative, revision, len(frame), digest(data), _format(), time.time()),
        )
    except (OSError, sqlite3.Error, pa.ArrowException):
        return False
    return True
