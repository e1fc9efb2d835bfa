"""Parquet snapshots of finished runs' tasks and attempts: big runs read in a fraction of a second.

SQLite stays the source of truth. A snapshot holds a run's rows of ``tasks`` or ``attempts``
as SQLite returns them (``SELECT * ... ORDER BY rowid``), read with sqlite3 straight into
pyarrow, without pandas: the store writer process takes it after a run's last commit (when the
run has at least ``MIN_ROWS`` tasks), and the explicit step ``Store.snapshot(run)`` takes
whatever is missing. It lives in ``snapshots/<run_id>/<table>.parquet``, written atomically,
and is recorded in the ``snapshots`` table with the run's revision, its row count, the file's
digest and the versions that wrote it. A reader turns its rows into the frame with the very
code that turns SQLite's rows into ``Store.tasks(run)`` or ``Store.attempts(run)``, so the
frame is the same either way. Every write to a run's tasks or attempts through provtask bumps
the run's revision (``revisions`` table) in the same transaction. A snapshot is read only
while all of it still holds; otherwise readers read SQLite. Reading never writes.

Standard library at import (pyarrow when a snapshot is taken or read), so that the writer
process, which imports this module through ``batch.py``, stays small.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ..states import RunStatus
from .atomic import digest, write_atomically

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

MIN_ROWS = 10_000  # smaller runs read from SQLite about as fast as from a file
FOLDER = "snapshots"
SNAPSHOT_TABLES = ("tasks", "attempts")
RUN_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")  # the run ids provtask makes: safe file names
CHUNK = 20_000  # rows read from SQLite and written to Parquet at a time


def bump_revisions(conn: sqlite3.Connection, run_ids: Iterable[str]) -> None:
    """Mark runs' tasks and attempts as changed; call inside the transaction that changes them."""
    conn.executemany(
        "INSERT INTO revisions (run_id, revision) VALUES (?, 1) "
        "ON CONFLICT (run_id) DO UPDATE SET revision = revision + 1",
        [(run_id,) for run_id in run_ids],
    )


def _rows_query(table: str) -> str:
    """The SQL of a run's whole ``table`` (one parameter: the run id), SQLite's and the
    snapshot's rows alike."""
    return f'SELECT * FROM {table} WHERE "run_id" = ? ORDER BY rowid'


def load_snapshot(
    conn: sqlite3.Connection, root: Path, run_id: str, table: str
) -> pd.DataFrame | None:
    """The run's rows of ``table`` as ``pandas.read_sql_query(_rows_query(table))`` would
    return them, from its snapshot while that is current and intact; else None."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = _current(conn, root, run_id, table)
    if data is None:
        return None
    try:
        return pq.read_table(pa.BufferReader(data)).to_pandas()
    except pa.ArrowException:
        return None


def take_snapshot(conn: sqlite3.Connection, root: Path, run_id: str, table: str) -> bool:
    """Snapshot the run's ``table`` if the run is finished, big, and its snapshot is not
    current already; returns whether the table has a current snapshot."""
    import pyarrow as pa

    if _current(conn, root, run_id, table) is not None:
        return True
    if not _finished(conn, run_id) or not RUN_ID.fullmatch(run_id):
        return False
    if _count(conn, run_id, table) < MIN_ROWS:
        return False
    before = _revision(conn, run_id)
    try:
        data, rows = _parquet(conn, run_id, table)
    except (pa.ArrowException, sqlite3.Error):  # e.g. a column's type changed meanwhile
        return False
    if data is None:
        return False
    # Equal revisions around the read: no write to the run committed in between, so the
    # file holds the run at that revision.
    if _revision(conn, run_id) != before:
        return False
    return _save(conn, root, run_id, table, data, rows, before)


def _revision(conn: sqlite3.Connection, run_id: str) -> int:
    row = conn.execute("SELECT revision FROM revisions WHERE run_id = ?", (run_id,)).fetchone()
    return row[0] if row else 0


def _count(conn: sqlite3.Connection, run_id: str, table: str) -> int:
    return conn.execute(f'SELECT count(*) FROM "{table}" WHERE run_id = ?', (run_id,)).fetchone()[0]


def _finished(conn: sqlite3.Connection, run_id: str) -> bool:
    row = conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return row is not None and row[0] != RunStatus.RUNNING.value


def _format(conn: sqlite3.Connection) -> str:
    """What a snapshot's bytes depend on besides the rows: a change rebuilds it."""
    import pyarrow as pa

    (schema,) = conn.execute("PRAGMA user_version").fetchone()
    return f"schema {schema}, SQLite rows, pyarrow {pa.__version__}"


def _current(conn: sqlite3.Connection, root: Path, run_id: str, table: str) -> bytes | None:
    """The snapshot file's bytes if the snapshot is current and intact; None otherwise."""
    row = conn.execute(
        "SELECT path, revision, rows, digest, format FROM snapshots "
        "WHERE run_id = ? AND table_name = ?",
        (run_id, table),
    ).fetchone()
    if row is None:
        return None
    path, revision, rows, recorded, made_by = row
    if revision != _revision(conn, run_id) or made_by != _format(conn):
        return None
    if _count(conn, run_id, table) != rows:  # rows added or deleted without provtask
        return None
    try:
        data = (root / path).read_bytes()
    except OSError:
        return None
    return data if digest(data) == recorded else None


def _column_types(conn: sqlite3.Connection, run_id: str, table: str) -> list[pa.DataType] | None:
    """Each column's Arrow type, chosen as pandas chooses a dtype for the same values (None
    when a column mixes text, numbers or bytes, which a snapshot cannot hold)."""
    import pyarrow as pa

    columns = [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]
    probes = ", ".join(f'group_concat(DISTINCT typeof("{column}"))' for column in columns)
    (found,) = conn.execute(f'SELECT {probes} FROM "{table}" WHERE run_id = ?', (run_id,))
    kinds = {
        frozenset({"null"}): pa.null(),
        frozenset({"integer"}): pa.int64(),
        frozenset({"real"}): pa.float64(),
        frozenset({"integer", "real"}): pa.float64(),
        frozenset({"text"}): pa.string(),
        frozenset({"blob"}): pa.binary(),
    }
    types = []
    for seen in found:
        names = set(seen.split(",")) if seen else {"null"}
        kind = kinds.get(frozenset(names - {"null"} or names))
        if kind is None:
            return None
        types.append(kind)
    return types


def _parquet(conn: sqlite3.Connection, run_id: str, table: str) -> tuple[bytes | None, int]:
    """The run's rows of ``table`` as Parquet bytes (None if a column cannot be typed), and
    how many rows they hold; read and written ``CHUNK`` rows at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = _column_types(conn, run_id, table)
    if types is None:
        return None, 0
    cursor = conn.execute(_rows_query(table), (run_id,))
    schema = pa.schema(
        [(column[0], kind) for column, kind in zip(cursor.description, types, strict=True)]
    )
    sink = pa.BufferOutputStream()
    rows = 0
    with pq.ParquetWriter(sink, schema, compression="zstd") as out:
        while chunk := cursor.fetchmany(CHUNK):
            columns = zip(*chunk, strict=True)
            arrays = [
                pa.array(values, type=kind) for values, kind in zip(columns, types, strict=True)
            ]
            out.write_batch(pa.record_batch(arrays, schema=schema))
            rows += len(chunk)
    return sink.getvalue().to_pybytes(), rows


def _save(
    conn: sqlite3.Connection,
    root: Path,
    run_id: str,
    table: str,
    data: bytes,
    rows: int,
    revision: int,
) -> bool:
    """Write and record a snapshot (whether it could); a store that cannot take one is simply
    read from SQLite."""
    relative = f"{FOLDER}/{run_id}/{table}.parquet"
    try:
        write_atomically(root / relative, data)
        conn.execute(
            "INSERT OR REPLACE INTO snapshots (run_id, table_name, path, revision, rows, digest, "
            "format, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, table, relative, revision, rows, digest(data), _format(conn), time.time()),
        )
    except (OSError, sqlite3.Error):
        return False
    return True
