"""Provenance archives: runs with their rows and artifacts in one zip, imported by another store.

An archive holds ``provtask-archive.json`` (format, schema version, runs, row counts and
every artifact's hash and size), ``tables/<table>.jsonl`` (one JSON object per row, in the
order the store wrote them) and ``artifacts/<hash>`` (the artifacts' bytes). Which tables
travel is read from the schema, so a table added by a later migration travels without
change here:

* a table with a ``run_id`` column: the rows of the archived runs;
* a content-addressed table, keyed by ``hash`` (``artifacts``, ``texts``): the rows whose
  hash any ``*_hash`` column of those rows names;
* a table keyed by one column that the run rows also have (``code`` by ``code_hash``): the
  rows they name;
* ``LOCAL_TABLES``: caches of one store (snapshot bookkeeping), never shared.

Importing verifies every artifact's bytes against its hash before anything lands, never
unpickles, refuses an archive of a newer schema or with a run the store already has, and
commits all rows in one transaction (artifact files written for a failed import are removed).
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import IntegrityError, StoreError
from .artifacts import check_hash, digest
from .schema import SCHEMA_VERSION
from .snapshot import bump_revisions

if TYPE_CHECKING:
    from .store import Store

FORMAT = "provtask-archive"
FORMAT_VERSION = 1
MANIFEST = "provtask-archive.json"
ARTIFACTS = "artifacts"
LOCAL_TABLES = frozenset({"revisions", "snapshots"})


@dataclass(frozen=True)
class TablePlan:
    """How the rows of one table are chosen for an archive."""

    table: str
    by_run: bool  # rows of the archived runs
    key: str | None = None  # else: rows whose ``key`` the run rows name


@dataclass(frozen=True)
class ImportSummary:
    """What an import added to the store."""

    runs: list[str]
    rows: dict[str, int]
    artifacts: int  # artifacts new to the store
    artifact_bytes: int


def columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]


def store_tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY rowid"
    )
    return [name for (name,) in rows]


def table_plans(conn: sqlite3.Connection) -> list[TablePlan]:
    """Every shared table of the schema, run tables first; an unclassifiable table is an error
    (a new table must say whether and how it travels)."""
    tables = [t for t in store_tables(conn) if t not in LOCAL_TABLES]
    run_tables = [t for t in tables if "run_id" in columns(conn, t)]
    run_columns = {c for t in run_tables for c in columns(conn, t)}
    plans = [TablePlan(t, by_run=True) for t in run_tables]
    for table in tables:
        if table in run_tables:
            continue
        key = _primary_key(conn, table)
        if key == ["hash"] or (len(key) == 1 and key[0] in run_columns):
            plans.append(TablePlan(table, by_run=False, key=key[0]))
        else:
            raise StoreError(
                f"the store table {table!r} has no run_id column and no key that runs refer "
                "to, so an archive cannot say which of its rows belong to a run; classify it "
                "in provtask/store/archive.py"
            )
    return plans


def _primary_key(conn: sqlite3.Connection, table: str) -> list[str]:
    info = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
    return [row[1] for row in sorted(info, key=lambda r: r[5]) if row[5]]


def encode_row(row: dict[str, Any]) -> str:
    """A row as one JSON line; bytes (rare outside artifacts) as ``{"base64": ...}``."""
    return json.dumps(
        {
            k: {"base64": base64.b64encode(v).decode()} if isinstance(v, bytes) else v
            for k, v in row.items()
        },
        ensure_ascii=False,
        allow_nan=True,
    )


def decode_row(line: str) -> dict[str, Any]:
    row = json.loads(line)
    if not isinstance(row, dict):
        raise StoreError("a table row of the archive is not a JSON object")
    return {
        k: base64.b64decode(v["base64"]) if isinstance(v, dict) and "base64" in v else v
        for k, v in row.items()
    }


# -- import ---------------------------------------------------------------------------------
def import_archive(store: Store, path: str | os.PathLike) -> ImportSummary:
    """Add the runs of an archive to ``store``, all or nothing (see the module docstring)."""
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise StoreError(f"cannot read {path} as a provtask archive: {exc}") from exc
    with archive:
        manifest = _manifest(archive, path)
        tables = _read_tables(archive, manifest, store.conn, path)
        artifacts = _read_artifacts(archive, manifest, tables.get("artifacts", []), path)
    _refuse_known_runs(store, manifest["runs"])
    return _land(store, manifest["runs"], tables, artifacts)


def _manifest(archive: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(archive.read(MANIFEST))
    except (KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise StoreError(
            f"{path} is not a provtask archive (no readable {MANIFEST}): {exc}"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise StoreError(f"{path} is not a provtask archive ({MANIFEST} says otherwise)")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise StoreError(
            f"{path} is a provtask archive of format {manifest['format_version']}, newer than "
            f"this provtask reads ({FORMAT_VERSION}); upgrade provtask to import it"
        )
    schema = manifest.get("schema_version")
    if not isinstance(schema, int) or schema > SCHEMA_VERSION:
        raise StoreError(
            f"{path} was written by a provtask with store schema {schema}, newer than this "
            f"one ({SCHEMA_VERSION}); upgrade provtask to import it"
        )
    return manifest


def _read_tables(
    archive: zipfile.ZipFile, manifest: dict[str, Any], conn: sqlite3.Connection, path: Path
) -> dict[str, list[dict[str, Any]]]:
    known = set(store_tables(conn)) - LOCAL_TABLES
    tables: dict[str, list[dict[str, Any]]] = {}
    for table, count in manifest.get("tables", {}).items():
        if table not in known:
            raise StoreError(
                f"{path} has a table {table!r} this store does not have; upgrade provtask"
            )
        try:
            lines = archive.read(f"tables/{table}.jsonl").decode().splitlines()
        except (KeyError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
            raise StoreError(f"{path}: table {table!r} cannot be read: {exc}") from exc
        rows = [decode_row(line) for line in lines if line]
        if len(rows) != count:
            raise StoreError(
                f"{path}: table {table!r} has {len(rows)} rows, its manifest says {count}"
            )
        allowed = set(columns(conn, table))
        for row in rows:
            if unknown := set(row) - allowed:
                raise StoreError(
                    f"{path}: table {table!r} has column(s) {', '.join(sorted(unknown))} this "
                    "store does not have; upgrade provtask"
                )
            if table == "runs" and row.get("run_id") not in manifest["runs"]:
                raise StoreError(f"{path}: run {row.get('run_id')!r} is not in its manifest")
        tables[table] = rows
    return tables


def _read_artifacts(
    archive: zipfile.ZipFile, manifest: dict[str, Any], rows: list[dict[str, Any]], path: Path
) -> dict[str, bytes]:
    """Every artifact's bytes, each checked against its hash; the rows must list the same."""
    sizes: dict[str, int] = manifest.get("artifacts", {})
    if {row.get("hash") for row in rows} != set(sizes):
        raise StoreError(f"{path}: the artifact rows and the manifest's artifacts differ")
    found: dict[str, bytes] = {}
    for row in rows:
        hash_ = check_hash(row["hash"])
        try:
            member = archive.getinfo(f"{ARTIFACTS}/{hash_}")
            if member.file_size != sizes[hash_] or row.get("size") != sizes[hash_]:
                raise IntegrityError(
                    f"{path}: artifact {hash_[:12]}… has {member.file_size} bytes, the archive "
                    f"records {sizes[hash_]}; nothing was imported"
                )
            data = archive.read(member)
        except (KeyError, zipfile.BadZipFile) as exc:
            raise StoreError(f"{path}: artifact {hash_[:12]}… cannot be read: {exc}") from exc
        actual = digest(data)
        if actual != hash_:
            raise IntegrityError(
                f"{path}: artifact {hash_[:12]}… is corrupted (its bytes hash to {actual[:12]}…);"
                " nothing was imported. Ask for the archive again"
            )
        found[hash_] = data
    return found


def _refuse_known_runs(store: Store, runs: list[str]) -> None:
    if not runs:
        raise StoreError("the archive holds no runs")
    marks = ", ".join("?" * len(runs))
    known = [
        r for (r,) in store.conn.execute(f"SELECT run_id FROM runs WHERE run_id IN ({marks})", runs)
    ]
    if known:
        raise StoreError(
            f"the store {store.root} already has run(s) {', '.join(known)}; nothing was "
            "imported (a run id names one run: import into another store, or leave it out)"
        )


def _land(
    store: Store,
    runs: list[str],
    tables: dict[str, list[dict[str, Any]]],
    artifacts: dict[str, bytes],
) -> ImportSummary:
    """Write the artifact files, then every row in one transaction; undo the files on failure."""
    conn = store.conn
    present = _present_artifacts(conn, list(artifacts))
    written: list[Path] = []
    new_bytes = 0
    try:
        for row in tables.get("artifacts", []):
            data = artifacts[row["hash"]]
            if row["hash"] not in present:
                new_bytes += len(data)
            # Inline or a file as in the exporting store; a file's path is made here, never
            # taken from the archive.
            if row.get("path") is None:
                row["data"] = data
                continue
            target = store.root / store.files.relative_path(row["hash"])
            existed = target.exists()
            row["data"], row["path"] = None, store.files.write(row["hash"], data)
            if not existed:
                written.append(target)
        plans = {plan.table: plan for plan in table_plans(conn)}
        conn.execute("BEGIN IMMEDIATE")
        counts = {}
        for table, rows in tables.items():
            verb = "INSERT" if plans[table].by_run else "INSERT OR IGNORE"
            for row in rows:
                names = ", ".join(f'"{c}"' for c in row)
                conn.execute(
                    f'{verb} INTO "{table}" ({names}) VALUES ({", ".join("?" * len(row))})',
                    tuple(row.values()),
                )
            counts[table] = len(rows)
        bump_revisions(conn, runs)
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        for target in written:
            target.unlink(missing_ok=True)
        if isinstance(exc, sqlite3.Error):
            raise StoreError(
                f"importing into {store.root} failed, nothing was imported: {exc}"
            ) from exc
        raise
    return ImportSummary(
        runs=list(runs),
        rows=counts,
        artifacts=len(set(artifacts) - present),
        artifact_bytes=new_bytes,
    )


def _present_artifacts(conn: sqlite3.Connection, hashes: list[str]) -> set[str]:
    present: set[str] = set()
    for start in range(0, len(hashes), 500):
        chunk = hashes[start : start + 500]
        rows = conn.execute(
            f"SELECT hash FROM artifacts WHERE hash IN ({', '.join('?' * len(chunk))})", chunk
        )
        present.update(h for (h,) in rows)
    return present


def manifest_for(
    runs: list[str], counts: dict[str, int], sizes: dict[str, int], provtask_version: str
) -> dict[str, Any]:
    """The manifest an exporter writes."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "schema_version": SCHEMA_VERSION,
        "provtask_version": provtask_version,
        "created_at": time.time(),
        "runs": runs,
        "tables": counts,
        "artifacts": sizes,
    }
