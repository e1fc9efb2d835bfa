"""Parquet export: each table of a run as a Hive-partitioned dataset, ``TABLE/run_id=ID/``.

The files are plain Parquet, readable by pandas, pyarrow and duckdb. Exporting a run again
replaces its partitions atomically, so exports are idempotent.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import StoreError

if TYPE_CHECKING:
    import pandas as pd

    from ..store import Store

TABLES = ("runs", "tasks", "attempts", "workers", "edges", "artifacts")
_RUN_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")


def export_parquet(store: Store, runs: list[str], directory: str | os.PathLike) -> dict[str, int]:
    """Write every table of the given runs under ``directory``; returns rows per table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(directory).absolute()
    if root == store.root or root.is_relative_to(store.root):
        raise StoreError(f"export to a folder outside the store, not {root}")
    run_ids = [safe_run_id(store.resolve_run(ref)) for ref in dict.fromkeys(runs)]
    counts = dict.fromkeys(TABLES, 0)
    try:
        for run_id in run_ids:
            for table in TABLES:
                frame = _table(store, table, run_id).drop(columns="run_id", errors="ignore")
                schema = _schema(store, table, frame, pa)
                arrow = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
                _replace_partition(root / table / f"run_id={run_id}", arrow, pq)
                counts[table] += len(frame)
    except OSError as exc:
        raise StoreError(f"cannot write the export to {root}: {exc}") from exc
    return counts


def safe_run_id(run_id: str) -> str:
    """Run ids become folder names: only the shape provtask creates is accepted."""
    if not _RUN_ID.fullmatch(run_id):
        raise StoreError(f"run id {run_id!r} is not one provtask made; it is not exported")
    return run_id


def _table(store: Store, table: str, run_id: str) -> pd.DataFrame:
    if table == "runs":
        frame = store.runs()
        return frame[frame["run_id"] == run_id]
    return getattr(store, table)(run_id)


_SQLITE_TYPES = {"TEXT": "string", "INTEGER": "int64", "REAL": "float64", "BLOB": "binary"}


def _schema(store: Store, table: str, frame: pd.DataFrame, pa: object):
    """The same Arrow types for every run, even where a column is all empty in one run."""
    import pandas as pd

    declared = {
        name: kind for _, name, kind, *_ in store.conn.execute(f'PRAGMA table_info("{table}")')
    }
    fields = []
    for column, dtype in frame.dtypes.items():
        if isinstance(dtype, pd.DatetimeTZDtype):
            arrow_type = pa.timestamp("ns", tz="UTC")
        elif pd.api.types.is_timedelta64_dtype(dtype):
            arrow_type = pa.duration("ns")
        elif isinstance(dtype, pd.CategoricalDtype):
            arrow_type = pa.dictionary(pa.int32(), pa.string())
        else:
            arrow_type = getattr(pa, _SQLITE_TYPES.get(declared.get(column, "TEXT"), "string"))()
        fields.append(pa.field(column, arrow_type))
    return pa.schema(fields)


def _replace_partition(target: Path, table: object, pq: object) -> None:
    """Write to a temporary folder beside the target, then swap it in."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        pq.write_table(table, staging / "part-0.parquet")
        if target.exists():
            retired = target.with_name(f".retired-{target.name}-{os.getpid()}")
            os.replace(target, retired)
            os.replace(staging, target)
            shutil.rmtree(retired)
        else:
            os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
