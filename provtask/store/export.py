"""Export runs to Parquet datasets: one Hive-partitioned dataset per table, readable by pandas,
pyarrow and duckdb (layout and column types: docs/export.md).

``DIR/<table>/run_id=<run id>/part-0.parquet`` for the per-run tables, and one deduplicated
``DIR/artifacts/part-0.parquet`` (artifact metadata without the bytes) for every run exported
into ``DIR``. Rows are read in chunks with SQL parameters and written through a
``ParquetWriter``, so a run of any size needs memory for one batch only. Files are staged in a
hidden folder of ``DIR`` and moved into place with an atomic ``os.replace``; exporting the same
run again rewrites the same files.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import os
import re
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import StoreError
from ..states import RunStatus
from .schema import SCHEMA_VERSION
from .store import STALE_AFTER

if TYPE_CHECKING:
    from .store import Store

PER_RUN_TABLES = ("runs", "tasks", "attempts", "workers", "edges")
TABLES = (*PER_RUN_TABLES, "artifacts")
PART = "part-0.parquet"
BATCH_ROWS = 50_000  # rows per record batch (and Parquet row group)
BATCH_TEXT = 64 * 2**20  # ... or fewer, once the batch holds this many characters of text
COMPRESSION = "zstd"
# What provtask's run ids look like (engine.api.new_run_id); nothing else names a folder.
RUN_ID_RE = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")
_STAGING_PREFIX = ".provtask-export-"
_LOCK_NAME = ".provtask-export.lock"

_TIME = pa.timestamp("us", tz="UTC")
_CATEGORY = pa.dictionary(pa.int32(), pa.string())
_S, _I, _F = pa.string(), pa.int64(), pa.float64()


def _schema(table: str, *fields: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema(
        [pa.field(name, type_) for name, type_ in fields],
        metadata={"provtask.table": table, "provtask.schema_version": str(SCHEMA_VERSION)},
    )


# The columns of the files, in order. The per-run tables' run_id is not in the files: it is
# the partition key, restored from the folder name by Hive partitioning.
SCHEMAS: dict[str, pa.Schema] = {
    "runs": _schema(
        "runs",
        ("dag_name", _S),
        ("dag_file", _S),
        ("dag_file_hash", _S),
        ("params", _S),
        ("status", _CATEGORY),
        ("user", _S),
        ("host", _S),
        ("pid", _I),
        ("cluster", _S),
        ("provtask_version", _S),
        ("python_version", _S),
        ("dask_version", _S),
        ("distributed_version", _S),
        ("n_tasks", _I),
        ("started_at", _TIME),
        ("ended_at", _TIME),
        ("heartbeat_at", _TIME),
        ("error", _S),
    ),
    "tasks": _schema(
        "tasks",
        ("task_id", _S),
        ("name", _S),
        ("function", _S),
        ("kind", _S),
        ("parent", _S),
        ("code_hash", _S),
        ("partition", _S),
        ("resources", _S),
        ("inputs", _S),
        ("input_hash", _S),
        ("state", _CATEGORY),
        ("attempts", _I),
        ("output_hash", _S),
        ("ready_at", _TIME),
        ("started_at", _TIME),
        ("ended_at", _TIME),
        ("error", _S),
    ),
    "attempts": _schema(
        "attempts",
        ("task_id", _S),
        ("attempt", _I),
        ("key", _S),
        ("status", _CATEGORY),
        ("partition", _S),
        ("submitted_at", _TIME),
        ("started_at", _TIME),
        ("function_ended_at", _TIME),
        ("ended_at", _TIME),
        ("worker", _S),
        ("hostname", _S),
        ("pid", _I),
        ("slurm_job_id", _S),
        ("cpu_time", _F),
        ("peak_rss", _I),
        ("exc_type", _S),
        ("exc_message", _S),
        ("traceback", _S),
        ("stdout", _S),
        ("stderr", _S),
        ("output_hash", _S),
    ),
    "workers": _schema(
        "workers",
        ("worker", _S),
        ("name", _S),
        ("host", _S),
        ("pid", _I),
        ("nthreads", _I),
        ("memory_limit", _I),
        ("partition", _S),
        ("slurm_job_id", _S),
        ("connected_at", _TIME),
        ("disconnected_at", _TIME),
    ),
    "edges": _schema("edges", ("source", _S), ("target", _S), ("kind", _S)),
    "artifacts": _schema(
        "artifacts",
        ("hash", _S),
        ("size", _I),
        ("serializer", _S),
        ("type", _S),
        ("preview", _S),
        ("path", _S),
        ("created_at", _TIME),
    ),
}


def export_parquet(
    store: Store, runs: Iterable[str], directory: str | os.PathLike[str]
) -> dict[str, int]:
    """Export runs (ids, unique prefixes or ``latest``) to Parquet datasets under ``directory``.

    Returns the rows written per table, in ``TABLES`` order; for ``artifacts``, the rows of
    the rewritten file, which covers every run exported into ``directory`` so far.
    Raises ``NotFoundError`` for a run that is not in the store (before anything is written)
    and ``StoreError`` for a folder that cannot hold the export.
    """
    refs = list(runs)
    if not refs:
        raise StoreError("no runs to export; give run ids, id prefixes or 'latest'")
    root = _check_directory(store, Path(directory))
    run_ids = list(dict.fromkeys(_checked_run_id(store.resolve_run(ref)) for ref in refs))
    root.mkdir(parents=True, exist_ok=True)
    with _export_lock(root), _snapshot(store.conn):
        staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=root))
        try:
            counts = dict.fromkeys(TABLES, 0)
            staged: list[Path] = []
            counts["artifacts"] = _write_artifacts(
                store.conn, run_ids, root / "artifacts" / PART, staging / "artifacts" / PART
            )
            staged.append(staging / "artifacts" / PART)
            stale_before = time.time() - STALE_AFTER
            # The runs row last: a reader who sees a run's row finds the rest of it.
            for run_id in run_ids:
                for table in ("tasks", "attempts", "workers", "edges", "runs"):
                    path = staging / table / f"run_id={run_id}" / PART
                    counts[table] += _write_run_table(store.conn, table, run_id, path, stale_before)
                    staged.append(path)
            for path in staged:
                _publish(path, root / path.relative_to(staging))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return counts


# -- checks -----------------------------------------------------------------------------------
def _check_directory(store: Store, directory: Path) -> Path:
    root = directory.absolute()
    if root.exists() and not root.is_dir():
        raise StoreError(f"cannot export to {root}: it is not a folder")
    resolved, store_root = root.resolve(), store.root.resolve()
    if resolved == store_root or store_root in resolved.parents:
        raise StoreError(
            f"cannot export into the store folder {store_root}; choose a folder outside it"
        )
    return root


def _checked_run_id(run_id: str) -> str:
    """The run id, if it has the shape of provtask's run ids: it becomes a folder name."""
    if not RUN_ID_RE.fullmatch(run_id):
        raise StoreError(
            f"run {run_id!r} does not have a provtask run id (YYYYMMDD-HHMMSS-xxxxxx); "
            "it cannot be exported"
        )
    return run_id


@contextlib.contextmanager
def _export_lock(root: Path) -> Iterator[None]:
    """One export at a time into a folder (the artifacts file is read, merged and replaced).

    Whoever holds the lock may also remove staging folders left behind by a crashed export.
    """
    try:
        import fcntl
    except ImportError:  # no advisory locks (Windows): concurrent exports are not guarded
        yield
        return
    with open(root / _LOCK_NAME, "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            for leftover in root.glob(_STAGING_PREFIX + "*"):
                shutil.rmtree(leftover, ignore_errors=True)
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def _snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """One read transaction, so all tables of the export come from one state of the store."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")  # nothing was written


# -- reading ----------------------------------------------------------------------------------
def _time_us(column: str) -> str:
    """SQL: epoch seconds (REAL) as integer microseconds, rounded to the nearest.

    The fraction is taken apart from the whole seconds so the rounding is exact: scaling the
    whole value by 10⁶ first would lose a bit of precision and misround about one time in 8.
    """
    whole = f'CAST("{column}" AS INTEGER)'
    return f'{whole} * 1000000 + CAST(round(("{column}" - {whole}) * 1000000) AS INTEGER)'


def _select(table: str, overrides: dict[str, str] | None = None) -> str:
    """SQL: the table's exported columns, then the characters of text in the row."""
    schema = SCHEMAS[table]
    columns, text = [], []
    for field in schema:
        if overrides and field.name in overrides:
            columns.append(overrides[field.name])
        elif field.type == _TIME:
            columns.append(_time_us(field.name))
        else:
            columns.append(f'"{field.name}"')
        if field.type in (_S, _CATEGORY):
            text.append(f'coalesce(length("{field.name}"), 0)')
    return f"SELECT {', '.join(columns)}, {' + '.join(text) or '0'} FROM {table}"


def _write_run_table(
    conn: sqlite3.Connection, table: str, run_id: str, path: Path, stale_before: float
) -> int:
    overrides, params = None, []
    if table == "runs":
        # As provtask runs / Store.runs show it: a running run whose driver has stopped
        # writing its heartbeat is interrupted.
        overrides = {
            "status": "CASE WHEN status = ? AND (heartbeat_at IS NULL OR heartbeat_at < ?) "
            "THEN ? ELSE status END"
        }
        params = [RunStatus.RUNNING.value, stale_before, RunStatus.INTERRUPTED.value]
    sql = f"{_select(table, overrides)} WHERE run_id = ? ORDER BY rowid"
    return _write(table, conn.execute(sql, [*params, run_id]), path)


def _write_artifacts(
    conn: sqlite3.Connection, run_ids: Sequence[str], existing: Path, path: Path
) -> int:
    """The artifacts the runs' tasks and attempts name by output hash, merged with those of
    the existing file (runs exported before), sorted by hash and without duplicates."""
    sql = (
        f"{_select('artifacts')} WHERE hash IN ("
        "SELECT output_hash FROM tasks WHERE run_id IN (SELECT value FROM json_each(?)) "
        "UNION SELECT output_hash FROM attempts WHERE run_id IN (SELECT value FROM json_each(?))"
        ") ORDER BY hash"
    )
    ids = json.dumps(list(run_ids))
    new = conn.execute(sql, (ids, ids))
    merged = heapq.merge(new, _existing_artifacts(existing), key=lambda row: row[0])
    return _write("artifacts", _unique_by_hash(merged, existing), path)


def _existing_artifacts(path: Path) -> Iterator[tuple]:
    """Rows of an earlier export's artifacts file, shaped like the SQL rows (text size last)."""
    if not path.is_file():
        return
    expected = SCHEMAS["artifacts"]
    try:
        with pq.ParquetFile(path) as parquet:
            if not parquet.schema_arrow.equals(expected):
                raise StoreError(
                    f"{path} was not written by this version of provtask's export (its "
                    "columns differ); remove it, and export every run again"
                )
            for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
                columns = [
                    column.cast(_I) if column.type == _TIME else column for column in batch.columns
                ]
                for row in zip(*(column.to_pylist() for column in columns), strict=True):
                    yield (*row, sum(len(v) for v in row if isinstance(v, str)))
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(f"cannot read the earlier export {path}: {exc}") from exc


def _unique_by_hash(rows: Iterable[tuple], existing: Path) -> Iterator[tuple]:
    """Rows sorted by hash, the first of each hash kept (``heapq.merge`` puts the store's
    rows before the file's)."""
    last = None
    for row in rows:
        if last is not None and row[0] <= last:
            if row[0] == last:
                continue
            raise StoreError(
                f"{existing} is not sorted by hash; remove it, and export every run again"
            )
        last = row[0]
        yield row


# -- writing ----------------------------------------------------------------------------------
def _write(table: str, rows: Iterable[tuple], path: Path) -> int:
    """Rows (the exported columns, then their characters of text) to a new Parquet file,
    in batches of at most ``BATCH_ROWS`` rows or about ``BATCH_TEXT`` characters; fsynced."""
    schema = SCHEMAS[table]
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with pq.ParquetWriter(path, schema, compression=COMPRESSION) as writer:
        for chunk in _chunks(rows):
            writer.write_batch(_batch(table, schema, chunk), row_group_size=BATCH_ROWS)
            written += len(chunk)
    with open(path, "rb") as done:
        os.fsync(done.fileno())
    return written


def _chunks(rows: Iterable[tuple]) -> Iterator[list[tuple]]:
    chunk: list[tuple] = []
    text = 0
    for row in rows:
        chunk.append(row)
        text += row[-1]
        if len(chunk) >= BATCH_ROWS or text >= BATCH_TEXT:
            yield chunk
            chunk, text = [], 0
    if chunk:
        yield chunk


def _batch(table: str, schema: pa.Schema, rows: list[tuple]) -> pa.RecordBatch:
    columns = list(zip(*rows, strict=True))
    arrays = []
    for field, values in zip(schema, columns[:-1], strict=True):
        try:
            if field.type == _CATEGORY:
                arrays.append(pa.array(values, _S).dictionary_encode())
            else:
                arrays.append(pa.array(values, field.type))
        except (pa.ArrowException, OverflowError) as exc:
            raise StoreError(
                f"cannot export {table}.{field.name} as {field.type}: {exc} (a value of "
                "the wrong type in the store?)"
            ) from exc
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _publish(staged: Path, target: Path) -> None:
    """Move a staged file into place atomically: readers see the old file or the new one.

    Other Parquet files in the partition folder would be read as more rows of the run, so
    they are removed.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, target)
    for other in target.parent.iterdir():
        if other.name != target.name and other.suffix == ".parquet" and other.is_file():
            other.unlink()


__all__ = ["RUN_ID_RE", "SCHEMAS", "TABLES", "export_parquet"]
