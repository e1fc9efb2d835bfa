"""Writing provenance archives (the format, and importing, are in ``provtask.store.archive``)."""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import zipfile
from pathlib import Path

from ..errors import StoreError
from ..store import Store
from ..store.archive import (
    ARTIFACTS,
    MANIFEST,
    TablePlan,
    columns,
    encode_row,
    manifest_for,
    table_plans,
)
from ..store.store import is_stale


def export_archive(store: Store, runs: list[str], path: str | os.PathLike) -> dict[str, int]:
    """Write the given runs (rows and artifacts) to a zip at ``path``, atomically; returns
    the rows per table and ``artifact_bytes``."""
    from .. import __version__

    run_ids = [store.resolve_run(ref) for ref in dict.fromkeys(runs)]
    for run_id in run_ids:
        info = store.run(run_id)
        if info["status"] == "running" and not is_stale(info["heartbeat_at"]):
            raise StoreError(f"run {run_id} is still running; export it once it has finished")
    target = Path(path).absolute()
    tables = _select(store.conn, table_plans(store.conn), run_ids)
    hashes = [row["hash"] for row in tables.get("artifacts", [])]
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".archive-", suffix=".zip")
    os.close(fd)
    sizes: dict[str, int] = {}
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for hash_ in hashes:
                data = _artifact_bytes(store, hash_)
                sizes[hash_] = len(data)
                archive.writestr(f"{ARTIFACTS}/{hash_}", data)
            for table, rows in tables.items():
                lines = (encode_row(row) + "\n" for row in rows)
                archive.writestr(f"tables/{table}.jsonl", "".join(lines))
            counts = {table: len(rows) for table, rows in tables.items()}
            manifest = manifest_for(run_ids, counts, sizes, __version__)
            archive.writestr(MANIFEST, json.dumps(manifest, indent=1))
        os.replace(tmp, target)
    except OSError as exc:
        raise StoreError(f"cannot write the archive {target}: {exc}") from exc
    finally:
        Path(tmp).unlink(missing_ok=True)
    return {**counts, "artifact_bytes": sum(sizes.values())}


def _select(
    conn: sqlite3.Connection, plans: list[TablePlan], run_ids: list[str]
) -> dict[str, list[dict]]:
    """The rows of each table that belong to the runs, in the order the store wrote them."""
    conn.row_factory = sqlite3.Row
    try:
        tables: dict[str, list[dict]] = {}
        marks = ", ".join("?" * len(run_ids))
        for plan in plans:
            if not plan.by_run:
                continue
            rows = conn.execute(
                f'SELECT * FROM "{plan.table}" WHERE run_id IN ({marks}) ORDER BY rowid', run_ids
            )
            tables[plan.table] = [dict(row) for row in rows]
        for plan in plans:
            if plan.by_run:
                continue
            wanted = _referenced(tables, plan.key)
            keep = []
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                select = "*" if plan.table != "artifacts" else _without_data(conn)
                rows = conn.execute(
                    f'SELECT {select} FROM "{plan.table}" WHERE "{plan.key}" IN '
                    f"({', '.join('?' * len(chunk))}) ORDER BY rowid",
                    chunk,
                )
                keep += [dict(row) for row in rows]
            tables[plan.table] = keep
        return tables
    finally:
        conn.row_factory = None


def _referenced(tables: dict[str, list[dict]], key: str | None) -> list[str]:
    """The values run rows give for ``key``; for a content-addressed table (``hash``),
    those of every ``*_hash`` column (outputs, MPI streams, DAG sources, clusters files…)."""
    values: dict[str, None] = {}
    for rows in tables.values():
        for row in rows:
            for column, value in row.items():
                named = column.endswith("_hash") if key == "hash" else column == key
                if named and isinstance(value, str):
                    values[value] = None
    return list(values)


def _without_data(conn: sqlite3.Connection) -> str:
    return ", ".join(f'"{c}"' for c in columns(conn, "artifacts") if c != "data")


def _artifact_bytes(store: Store, hash_: str) -> bytes:
    path, data = store.conn.execute(
        "SELECT path, data FROM artifacts WHERE hash = ?", (hash_,)
    ).fetchone()
    return data if data is not None else store.files.read(path)
