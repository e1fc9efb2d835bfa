"""The provenance store: open (creating and migrating) a store folder, and query it.

Queries return pandas DataFrames with real dtypes: timestamps as UTC datetimes, durations as
timedeltas, states as categoricals. Filters are SQL parameters, never text pasted into SQL.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlite_utils

from ..errors import NotFoundError, StoreError
from ..states import AttemptStatus, RunStatus, TaskState
from .artifacts import ArtifactFiles
from .connection import connect, database_path
from .context import read_run_context
from .outputs import load_artifact, task_output
from .schema import migrate
from .snapshot import SNAPSHOT_TABLES, load_snapshot, take_snapshot
from .writer import StoreWriter
from .writer_channel import wait_for_snapshot

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_STORE = "store"
# A run whose driver has not written a heartbeat for this long is shown as interrupted
# (the driver beats every 5 s; this leaves room for a slow shared filesystem).
STALE_AFTER = 60.0
_TIME_COLUMNS = (
    "started_at",
    "ended_at",
    "function_ended_at",
    "heartbeat_at",
    "ready_at",
    "submitted_at",
    "connected_at",
    "disconnected_at",
    "created_at",
    "job_submitted_at",
)

_SECONDS_COLUMNS = ("cpu_time", "mpi_wall_time")


# A run's status as users see it (see is_stale); parameters: "running", the stale time.
_STATUS_NOW = (
    "CASE WHEN status = ? AND (heartbeat_at IS NULL OR heartbeat_at < ?) "
    f"THEN '{RunStatus.INTERRUPTED.value}' ELSE status END AS status"
)


def is_stale(heartbeat_at: float | None) -> bool:
    return heartbeat_at is None or heartbeat_at < time.time() - STALE_AFTER


def default_store_path() -> Path:
    """``$PROVTASK_STORE`` if set, else ``./store``."""
    return Path(os.environ.get("PROVTASK_STORE") or DEFAULT_STORE)


class Store:
    """A provenance store folder: ``provtask.db`` plus ``artifacts/``."""

    def __init__(self, path: str | os.PathLike | None = None, *, create: bool = True) -> None:
        # Absolute, so workers started elsewhere write artifacts to the same place.
        self.root = (Path(path) if path is not None else default_store_path()).absolute()
        if "\0" in str(self.root):
            raise StoreError(f"the store path {str(self.root)!r} contains a NUL byte")
        database = database_path(self.root)
        if not create and not database.exists():
            shown = database.name if database.parent == self.root else database
            raise NotFoundError(
                f"no provenance store at {self.root} (no {shown}); run a DAG first or pass "
                "--store DIR / set PROVTASK_STORE"
            )
        _refuse_truncated(database, self.root)
        try:
            self.conn = connect(self.root, create=create)
            self.db = sqlite_utils.Database(self.conn)
            migrate(self.db)
        except (sqlite3.DatabaseError, OSError) as exc:
            raise StoreError(
                f"cannot open the store database {database}: {exc}; check it with "
                f"'provtask doctor --store {self.root}'"
            ) from exc
        self.files = ArtifactFiles(self.root)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def close(self) -> None:
        self.conn.close()

    def writer(self) -> StoreWriter:
        """A batched writer on its own connection (one per run)."""
        return StoreWriter(connect(self.root, create=False))

    # -- runs -------------------------------------------------------------------------------
    def resolve_run(self, ref: str) -> str:
        """A full run id from ``latest``, a full id or a unique prefix."""
        if ref == "latest":
            row = self.conn.execute(
                "SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1"
            ).fetchone()
            if row is None:
                raise NotFoundError(f"the store {self.root} has no runs yet")
            return row[0]
        rows = self.conn.execute(
            "SELECT run_id FROM runs WHERE run_id = ? OR substr(run_id, 1, ?) = ? LIMIT 3",
            (ref, len(ref), ref),
        ).fetchall()
        exact = [r[0] for r in rows if r[0] == ref]
        if exact:
            return exact[0]
        if not rows:
            raise NotFoundError(f"no run {ref!r} in {self.root}; list runs with 'provtask runs'")
        if len(rows) > 1:
            raise NotFoundError(f"run id prefix {ref!r} is ambiguous; give more characters")
        return rows[0][0]

    def run(self, ref: str) -> dict[str, Any]:
        """One run as a dict (params decoded), with counts of task states."""
        run_id = self.resolve_run(ref)
        row = self.db["runs"].get(run_id)
        row["params"] = json.loads(row["params"] or "{}")
        if row["status"] == RunStatus.RUNNING.value and is_stale(row["heartbeat_at"]):
            row["status"] = RunStatus.INTERRUPTED.value
        row["states"] = dict(
            self.conn.execute(
                "SELECT state, count(*) FROM tasks WHERE run_id = ? AND kind != 'map' "
                "GROUP BY state",
                (run_id,),
            ).fetchall()
        )
        return row

    def run_context(self, ref: str) -> dict[str, Any]:
        """What a run was made of, as recorded at its start (docs/api.md lists the keys):
        DAG file, source and hash, git commit and dirty flag, the clusters config's YAML text,
        hash and origin, the params with their exact types, command line, package versions,
        host, user and the recorded environment variables."""
        return read_run_context(self.conn, self.resolve_run(ref))

    def run_contexts(self, dag: str | None = None) -> pd.DataFrame:
        """One row per run (newest first) with the hashes of what :meth:`run_context` holds:
        which runs share a DAG source, a clusters config, package versions or params."""
        where, params = _where({"dag_name": dag})
        return self._frame(
            "SELECT * FROM (SELECT r.run_id, r.dag_name, r.started_at, c.dag_hash, "
            "c.git_commit, c.git_dirty, c.clusters_hash, c.clusters_origin, c.versions_hash, "
            "c.params, r.replay_of FROM runs r JOIN run_context c ON c.run_id = r.run_id) "
            f"{where} ORDER BY started_at DESC",
            params,
        )

    def runs(self, dag: str | None = None, status: str | None = None, limit: int | None = None):
        """All runs, newest first; a ``running`` run whose driver stopped beating is
        ``interrupted`` (also for the ``status`` filter)."""
        columns = [row[1] for row in self.conn.execute("PRAGMA table_info(runs)")]
        shown = ", ".join(
            _STATUS_NOW if column == "status" else f'"{column}"' for column in columns
        )
        where, params = _where({"dag_name": dag, "status": status})
        sql = f"SELECT * FROM (SELECT {shown} FROM runs) {where} ORDER BY started_at DESC"
        params = [RunStatus.RUNNING.value, time.time() - STALE_AFTER, *params]
        if limit:
            sql += " LIMIT ?"
            params.append(limit)
        frame = self._frame(sql, params)
        frame["duration"] = frame["ended_at"] - frame["started_at"]
        return _categorical(frame, "status", [s.value for s in RunStatus])

    # -- tasks and attempts -----------------------------------------------------------------
    def tasks(
        self, run: str, state: str | list[str] | None = None, name: str | None = None
    ) -> pd.DataFrame:
        """The tasks of a run (map elements included), in the order they became known.

        A finished run's whole table is read from its Parquet snapshot while that is current
        (see :meth:`snapshot`); the frame is the same either way."""
        run_id = self.resolve_run(run)
        if state is None and name is None:
            rows = load_snapshot(self.conn, self.root, run_id, "tasks")
            if rows is not None:
                return _tasks_frame(_with_times(rows))
        return self._tasks({"run_id": run_id, "state": state, "name": name})

    def _tasks(self, filters: dict[str, Any]) -> pd.DataFrame:
        where, params = _where(filters)
        return _tasks_frame(self._frame(f"SELECT * FROM tasks {where} ORDER BY rowid", params))

    def attempts(
        self,
        run: str | None = None,
        task: str | None = None,
        status: str | list[str] | None = None,
    ) -> pd.DataFrame:
        """Attempts (one row per try), optionally filtered by run, task id and status; a
        finished run's attempts come from its snapshot, as in :meth:`tasks`."""
        run_id = self.resolve_run(run) if run is not None else None
        if run_id is not None and task is None and status is None:
            rows = load_snapshot(self.conn, self.root, run_id, "attempts")
            if rows is not None:
                return _attempts_frame(_with_times(rows))
        return self._attempts({"run_id": run_id, "task_id": task, "status": status})

    def _attempts(self, filters: dict[str, Any]) -> pd.DataFrame:
        where, params = _where(filters)
        return _attempts_frame(
            self._frame(f"SELECT * FROM attempts {where} ORDER BY rowid", params)
        )

    def snapshot(self, run: str, timeout: float | None = 600) -> list[str]:
        """Parquet snapshots of a finished run's tasks and attempts (tables with at least
        ``snapshot.MIN_ROWS`` rows), for fast reads later; returns the tables that have a
        current snapshot. A big run's snapshots are taken by the store writer process after
        its last commit, without delaying ``dag.run()``: this call first waits (up to
        ``timeout`` seconds) for that, if this process ran the run, then takes any that is
        missing. The only read path that writes."""
        run_id = self.resolve_run(run)
        wait_for_snapshot(run_id, timeout)
        return [t for t in SNAPSHOT_TABLES if take_snapshot(self.conn, self.root, run_id, t)]

    def workers(self, run: str) -> pd.DataFrame:
        """Workers that served a run, with connect / disconnect times."""
        where, params = _where({"run_id": self.resolve_run(run)})
        frame = self._frame(f"SELECT * FROM workers {where} ORDER BY connected_at", params)
        frame["lifetime"] = frame["disconnected_at"] - frame["connected_at"]
        return frame

    def jobs(self, run: str) -> pd.DataFrame:
        """Batch jobs submitted for a run's partitions: job id, submission, state, reason."""
        where, params = _where({"run_id": self.resolve_run(run)})
        return self._frame(f"SELECT * FROM jobs {where} ORDER BY submitted_at", params)

    def edges(self, run: str) -> pd.DataFrame:
        where, params = _where({"run_id": self.resolve_run(run)})
        return self._frame(f"SELECT source, target, kind FROM edges {where}", params)

    def artifacts(self, run: str) -> pd.DataFrame:
        """Metadata (not the bytes) of the artifacts a run's tasks produced or reused."""
        return self._frame(
            "SELECT hash, size, serializer, type, preview, path, created_at FROM artifacts "
            "WHERE hash IN (SELECT output_hash FROM attempts WHERE run_id = ? "
            "UNION SELECT output_hash FROM tasks WHERE run_id = ?) ORDER BY hash",
            [self.resolve_run(run)] * 2,
        )

    # -- artifacts --------------------------------------------------------------------------
    def load_artifact(self, hash_: str) -> Any:
        """The value of an artifact, after checking its bytes against the hash."""
        return load_artifact(self.conn, self.files, hash_)

    def output(self, run: str, task_id: str, *, partial: bool = False) -> Any:
        """The stored output of one task of a run (a list for a ``.map`` node).

        ``partial=True`` reads a map whose elements did not all succeed: a
        :class:`~provtask.partial.Failed` marker stands for each element without output."""
        return task_output(self.conn, self.files, self.resolve_run(run), task_id, partial)

    # -- helpers ----------------------------------------------------------------------------
    def _frame(self, sql: str, params: list[Any]) -> pd.DataFrame:
        import pandas as pd

        try:
            frame = pd.read_sql_query(sql, self.conn, params=params)
        except (sqlite3.DatabaseError, pd.errors.DatabaseError) as exc:
            raise StoreError(
                f"reading the store database failed: {exc}; check it with "
                f"'provtask doctor --store {self.root}'"
            ) from exc
        return _with_times(frame)


def _with_times(frame: pd.DataFrame) -> pd.DataFrame:
    """Timestamps stored as seconds become UTC datetimes."""
    import pandas as pd

    for column in _TIME_COLUMNS:
        if column in frame:  # nanoseconds even when all are NULL (pandas would pick seconds)
            times = pd.to_datetime(frame[column], unit="s", utc=True)
            frame[column] = times.astype("datetime64[ns, UTC]")
    return frame


def _tasks_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame of ``tasks`` rows as :meth:`Store.tasks` returns it."""
    frame["duration"] = frame["ended_at"] - frame["started_at"]
    return _categorical(frame, "state", [s.value for s in TaskState])


def _attempts_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame of ``attempts`` rows as :meth:`Store.attempts` returns it."""
    frame["duration"] = frame["ended_at"] - frame["started_at"]
    frame["queue_wait"] = frame["started_at"] - frame["submitted_at"]
    return _seconds_as_timedelta(_categorical(frame, "status", [s.value for s in AttemptStatus]))


def _refuse_truncated(database: Path, root: Path) -> None:
    """An empty database beside stored artifacts was truncated: opening it would silently
    start a new, empty store over the old one."""
    artifacts = root / "artifacts"
    if (
        database.is_file()
        and database.stat().st_size == 0
        and artifacts.is_dir()
        and any(artifacts.iterdir())
    ):
        raise StoreError(
            f"the store database {database} is empty (0 bytes) but {artifacts} holds "
            "artifacts: the database was truncated. Restore it from a backup; "
            f"'provtask doctor --store {root}' shows what is left"
        )


def _where(filters: dict[str, Any]) -> tuple[str, list[Any]]:
    """A parameterised WHERE clause from column → value (or list of values); None is skipped."""
    clauses, params = [], []
    for column, value in filters.items():
        if value is None:
            continue
        if isinstance(value, list | tuple | set):
            values = list(value)
            clauses.append(f'"{column}" IN ({", ".join("?" * len(values))})')
            params.extend(values)
        else:
            clauses.append(f'"{column}" = ?')
            params.append(value)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def _seconds_as_timedelta(frame: pd.DataFrame) -> pd.DataFrame:
    """Durations stored as seconds become timedeltas, like ``duration``."""
    import pandas as pd

    for column in _SECONDS_COLUMNS:
        if column in frame:
            frame[column] = pd.to_timedelta(frame[column], unit="s")
    return frame


def _categorical(frame: pd.DataFrame, column: str, categories: list[str]) -> pd.DataFrame:
    import pandas as pd

    frame[column] = pd.Categorical(frame[column], categories=categories)
    return frame


def task_summary(tasks: pd.DataFrame) -> pd.DataFrame:
    """Per task name: how many tasks ended in each state, and their durations."""
    import pandas as pd

    runnable = tasks[tasks["kind"] != "map"]
    counts = pd.crosstab(runnable["name"], runnable["state"]).reindex(
        columns=[s.value for s in TaskState], fill_value=0
    )
    counts = counts.loc[:, (counts != 0).any(axis=0)]
    durations = runnable.groupby("name", sort=False)["duration"].agg(["mean", "max"])
    order = tasks["name"].drop_duplicates()  # map nodes come before their elements
    summary = counts.join(
        durations.rename(columns={"mean": "mean_duration", "max": "max_duration"})
    )
    return summary.reindex(order).reset_index()
