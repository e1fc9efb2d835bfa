"""The store's SQLite schema, versioned with ``PRAGMA user_version`` and applied by migrations.

Times are UNIX epoch seconds (REAL); structured fields are JSON text. Add a migration to
change the schema — never edit one that has shipped.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable

import sqlite_utils

from ..errors import StoreError

Migration = Callable[[sqlite_utils.Database], None]


def _v1_initial(db: sqlite_utils.Database) -> None:
    db["runs"].create(
        {
            "run_id": str,
            "dag_name": str,
            "dag_file": str,
            "dag_file_hash": str,
            "params": str,
            "status": str,
            "user": str,
            "host": str,
            "pid": int,
            "cluster": str,
            "provtask_version": str,
            "python_version": str,
            "dask_version": str,
            "distributed_version": str,
            "n_tasks": int,
            "started_at": float,
            "ended_at": float,
            "heartbeat_at": float,
            "error": str,
        },
        pk="run_id",
    )
    db["tasks"].create(
        {
            "run_id": str,
            "task_id": str,
            "name": str,
            "function": str,
            "kind": str,
            "parent": str,
            "code_hash": str,
            "partition": str,
            "resources": str,
            "inputs": str,
            "input_hash": str,
            "state": str,
            "attempts": int,
            "output_hash": str,
            "ready_at": float,
            "started_at": float,
            "ended_at": float,
            "error": str,
        },
        pk=("run_id", "task_id"),
    )
    db["attempts"].create(
        {
            "run_id": str,
            "task_id": str,
            "attempt": int,
            "key": str,
            "status": str,
            "partition": str,
            "submitted_at": float,
            "started_at": float,
            "ended_at": float,
            "worker": str,
            "hostname": str,
            "pid": int,
            "slurm_job_id": str,
            "cpu_time": float,
            "peak_rss": int,
            "exc_type": str,
            "exc_message": str,
            "traceback": str,
            "output_hash": str,
        },
        pk=("run_id", "task_id", "attempt"),
    )
    db["workers"].create(
        {
            "run_id": str,
            "worker": str,
            "name": str,
            "host": str,
            "pid": int,
            "nthreads": int,
            "memory_limit": int,
            "partition": str,
            "slurm_job_id": str,
            "connected_at": float,
            "disconnected_at": float,
        },
        pk=("run_id", "worker"),
    )
    db["edges"].create(
        {"run_id": str, "source": str, "target": str, "kind": str},
        pk=("run_id", "source", "target"),
    )
    db["artifacts"].create(
        {
            "hash": str,
            "size": int,
            "serializer": str,
            "type": str,
            "preview": str,
            "path": str,
            "data": bytes,
            "created_at": float,
        },
        pk="hash",
    )
    db["runs"].create_index(["started_at"])
    db["tasks"].create_index(["run_id", "state"])
    db["tasks"].create_index(["name"])
    db["attempts"].create_index(["run_id", "status"])
    db["attempts"].create_index(["output_hash"])


def _v2_function_end(db: sqlite_utils.Database) -> None:
    # When the task's own code returned, so storing its output is measured apart from it.
    db["attempts"].add_column("function_ended_at", float)


def _v3_output_streams(db: sqlite_utils.Database) -> None:
    # The tail of what the attempt printed (Python-level sys.stdout / sys.stderr).
    db["attempts"].add_column("stdout", str)
    db["attempts"].add_column("stderr", str)


def _v4_batch_jobs(db: sqlite_utils.Database) -> None:
    # Batch jobs of per-partition clusters: any scheduler's job id (not only SLURM's), the
    # node a worker ran on (fake SLURM nodes share one host name), and one row per job.
    for table in ("attempts", "workers"):
        db.execute(f"ALTER TABLE {table} RENAME COLUMN slurm_job_id TO batch_job_id")
        db[table].add_column("node", str)
    db["workers"].add_column("job_submitted_at", float)
    db["jobs"].create(
        {
            "run_id": str,
            "partition": str,
            "job_id": str,
            "name": str,
            "submitted_at": float,
            "state": str,
            "reason": str,
            "ended_at": float,
            "error": str,
        },
        pk=("run_id", "partition", "name"),
    )


def _v5_caching(db: sqlite_utils.Database) -> None:
    # Cache keys and where cached outputs came from; what replays; per-attempt resources;
    # the components of each code hash (for provtask why).
    for column, kind in (
        ("cache_key", str),
        ("cache_version", str),
        ("cache", str),
        ("cache_note", str),
        ("source_run", str),
        ("source_task", str),
        ("source_attempt", int),
    ):
        db["tasks"].add_column(column, kind)
    db["tasks"].create_index(["cache_key"])
    db["attempts"].add_column("n_items", int)
    db["attempts"].add_column("resources", str)
    db["runs"].add_column("replay_of", str)
    db["code"].create({"code_hash": str, "components": str}, pk="code_hash")


def _v6_mpi(db: sqlite_utils.Database) -> None:
    # MPI attempts: the launch line, launcher, ranks, nodes asked and the node of each rank
    # (JSON list), the launcher's exit code and wall time, and the artifacts holding the
    # program's (bounded) stdout and stderr.
    for column, kind in (
        ("mpi_command", str),
        ("mpi_launcher", str),
        ("mpi_ranks", int),
        ("mpi_nodes", int),
        ("mpi_node_list", str),
        ("exit_code", int),
        ("mpi_wall_time", float),
        ("stdout_hash", str),
        ("stderr_hash", str),
    ):
        db["attempts"].add_column(column, kind)


def _v7_failure_cause(db: sqlite_utils.Database) -> None:
    # Why a failed, lost or timed-out attempt ended (oom, timeout, node_failure, error):
    # what escalating retries act on.
    db["attempts"].add_column("failure_cause", str)


def _v8_snapshots(db: sqlite_utils.Database) -> None:
    # Parquet snapshots of finished runs' tasks and attempts (see snapshot.py): each write to
    # a run's tasks or attempts bumps the run's revision, and a snapshot is only read while
    # its revision and row count are the run's. No query looks attempts up by output hash, and
    # keeping that index of random keys up to date cost every attempt insert.
    db["revisions"].create({"run_id": str, "revision": int}, pk="run_id")
    db["snapshots"].create(
        {
            "run_id": str,
            "table_name": str,
            "path": str,
            "revision": int,
            "rows": int,
            "digest": str,
            "format": str,
            "created_at": float,
        },
        pk=("run_id", "table_name"),
    )
    db.execute("DROP INDEX IF EXISTS idx_attempts_output_hash")


def _v9_run_context(db: sqlite_utils.Database) -> None:
    # What each run was made of (runcontext.py): long texts (DAG sources, clusters files,
    # package versions) once each by hash, one context row per run; the normalised source
    # of each code component, so that provtask why can show a diff.
    db["texts"].create({"hash": str, "text": str}, pk="hash")
    db["run_context"].create(
        {
            "run_id": str,
            "dag_hash": str,
            "git_commit": str,
            "git_dirty": int,
            "clusters_hash": str,
            "clusters_origin": str,
            "versions_hash": str,
            "params": str,
            "command_line": str,
            "cwd": str,
            "env": str,
            "keep": str,
        },
        pk="run_id",
    )
    db["code"].add_column("sources", str)


def _v10_labels(db: sqlite_utils.Database) -> None:
    # A readable name of each task: its label template filled in, or a map element's own
    # input item (bounded), made on the worker where the values are.
    db["tasks"].add_column("label", str)


def _v11_gpu_ids(db: sqlite_utils.Database) -> None:
    # The devices a GPU attempt ran on, as its CUDA_VISIBLE_DEVICES said them ("0", "0,1").
    db["attempts"].add_column("gpu_ids", str)


MIGRATIONS: list[Migration] = [
    _v1_initial,
    _v2_function_end,
    _v3_output_streams,
    _v4_batch_jobs,
    _v5_caching,
    _v6_mpi,
    _v7_failure_cause,
    _v8_snapshots,
    _v9_run_context,
    _v10_labels,
    _v11_gpu_ids,
]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: sqlite_utils.Database) -> int:
    """Bring the database to ``SCHEMA_VERSION``; each migration commits atomically.

    The version is re-read inside an immediate transaction, so two processes opening a new
    store at once apply each migration exactly once.
    """
    conn = db.conn
    if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
        return SCHEMA_VERSION  # the common case needs no write lock
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"this store has schema version {version}, newer than this provtask "
                    f"understands ({SCHEMA_VERSION}); upgrade provtask to read it"
                )
            if version == SCHEMA_VERSION:
                conn.execute("COMMIT")
                return version
            if version == 0:  # a new store: every migration at once, as recorded in memory
                for statement in _new_store_schema():
                    conn.execute(statement)
                version = SCHEMA_VERSION - 1
            else:
                MIGRATIONS[version](db)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreError(
                    f"migrating the store past schema version {version} failed: {exc}"
                ) from exc
            raise


@functools.cache
def _new_store_schema() -> tuple[str, ...]:
    """The statements that create the latest schema, found by running every migration on an
    in-memory database once per process: a new store then takes a few statements instead of
    the migrations' hundreds of introspection queries, and cannot differ from a migrated one.
    """
    conn = sqlite3.connect(":memory:")
    try:
        db = sqlite_utils.Database(conn)
        for migration in MIGRATIONS:
            migration(db)
        rows = conn.execute(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' "
            "ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 ELSE 2 END, rowid"
        )
        return tuple(row[0] for row in rows)
    finally:
        conn.close()
