"""``provtask doctor``: check a store for damage, and repair only what is safe to repair.

Checks: SQLite's ``integrity_check``; the schema version; that every file artifact exists
and every artifact's bytes match its hash; files under ``artifacts/`` that no row names
(orphans, and temporary files left by a killed worker); runs still ``running`` whose driver
stopped writing its heartbeat. Checking changes nothing. Repairing (each problem says what it
does) deletes orphan and corrupted files, drops rows of corrupted inline artifacts, and marks
dead runs interrupted (taking the Parquet snapshots of the big ones, as a run does when it
ends); it never touches a healthy row, and refuses while a run is alive.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import StoreError
from ..states import AttemptStatus, RunStatus, TaskState
from .artifacts import ArtifactFiles, digest
from .connection import BUSY_TIMEOUT_MS, database_path
from .schema import SCHEMA_VERSION
from .snapshot import bump_revisions
from .store import STALE_AFTER, Store, is_stale

_TABLES = ("runs", "tasks", "attempts", "workers", "edges", "artifacts")


@dataclass(frozen=True)
class Problem:
    """One thing found wrong: ``kind`` is a stable name, ``repair`` what ``--repair`` does
    (empty when it cannot repair it)."""

    kind: str
    subject: str
    detail: str
    repair: str = ""


@dataclass
class Checkup:
    """What ``check_store`` found, and what ``repair`` changed."""

    store: Path
    database: Path
    checked: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    repaired: list[Problem] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems


def check_store(root: str | Path) -> Checkup:
    """Examine the store at ``root`` without changing it."""
    root = Path(root).absolute()
    database = database_path(root)
    checkup = Checkup(root, database)
    if not database.exists():
        raise StoreError(f"no provenance store at {root}: {database} does not exist")
    try:
        conn = _open(database)
    except sqlite3.Error as exc:
        checkup.problems.append(_unreadable(database, exc))
        return checkup
    try:
        if _check_database(conn, checkup):
            _check_artifacts(conn, root, checkup)
            _check_runs(conn, checkup)
    except sqlite3.DatabaseError as exc:
        checkup.problems.append(_unreadable(database, exc))
    finally:
        conn.close()
    return checkup


def repair(checkup: Checkup) -> Checkup:
    """Apply each problem's repair; returns the checkup with ``repaired`` filled and
    ``problems`` holding what is left. Refuses while a run's heartbeat is fresh, since its
    workers may be writing files that its rows do not name yet."""
    fixable = [p for p in checkup.problems if p.repair]
    if not fixable:
        return checkup
    conn = _open(checkup.database)
    try:
        live = conn.execute(
            "SELECT run_id FROM runs WHERE status = ? AND heartbeat_at >= ?",
            (RunStatus.RUNNING.value, time.time() - STALE_AFTER),
        ).fetchall()
        if live:
            raise StoreError(
                f"run {live[0][0]} is in progress; repair the store when no run is going on "
                "(its workers may be writing artifact files it has not recorded yet)"
            )
        for problem in fixable:
            _REPAIRS[problem.kind](conn, checkup.store, problem.subject)
            checkup.repaired.append(problem)
    finally:
        conn.close()
    _snapshot_ended([p.subject for p in checkup.repaired if p.kind == "dead run"], checkup.store)
    checkup.problems = [p for p in checkup.problems if not p.repair]
    return checkup


# -- checks ------------------------------------------------------------------------------------
def _open(database: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(database, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def _unreadable(database: Path, exc: sqlite3.Error) -> Problem:
    return Problem(
        "database",
        str(database),
        f"SQLite cannot read it ({exc}); provtask cannot repair this: keep a copy, then "
        f"recover what is readable with: sqlite3 {database} .recover | sqlite3 recovered.db",
    )


def _check_database(conn: sqlite3.Connection, checkup: Checkup) -> bool:
    """Integrity and schema; False when the database is too damaged to look further."""
    messages = [row[0] for row in conn.execute("PRAGMA integrity_check").fetchall()]
    if messages != ["ok"]:
        detail = "; ".join(messages[:5]) + (" …" if len(messages) > 5 else "")
        checkup.problems.append(_unreadable(checkup.database, sqlite3.DatabaseError(detail)))
        return False
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        checkup.problems.append(
            Problem(
                "schema",
                str(checkup.database),
                f"schema version {version} is newer than this provtask understands "
                f"({SCHEMA_VERSION}); upgrade provtask to check this store",
            )
        )
        return False
    present = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    missing = [t for t in _TABLES if t not in present]
    if missing or version == 0:
        checkup.problems.append(
            Problem(
                "schema",
                str(checkup.database),
                f"schema version {version}, tables missing: {', '.join(missing) or 'none'}; "
                "the database is empty (truncated?) or not one provtask wrote",
            )
        )
        return False
    checkup.checked["schema version"] = version
    return True


def _check_artifacts(conn: sqlite3.Connection, root: Path, checkup: Checkup) -> None:
    files = ArtifactFiles(root)
    named: set[Path] = set()
    rows = conn.execute("SELECT hash, path, data FROM artifacts")
    count = 0
    for hash_, path, data in rows:
        count += 1
        if path is None:
            if data is None or digest(data) != hash_:
                checkup.problems.append(
                    Problem(
                        "corrupted artifact",
                        hash_,
                        "its inline bytes do not match its hash; it is never loaded",
                        "delete its row; the next run of its DAG recomputes the task",
                    )
                )
            continue
        expected = files.relative_path(hash_) if _is_hash(hash_) else None
        if path != expected:
            checkup.problems.append(
                Problem("artifact path", hash_, f"its path {path!r} is not {expected!r}")
            )
            continue
        file = root / path
        named.add(file)
        problem = _check_file(hash_, file)
        if problem is not None:
            checkup.problems.append(problem)
    checkup.checked["artifacts"] = count
    _find_orphans(root / "artifacts", named, checkup)


def _is_hash(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _check_file(hash_: str, file: Path) -> Problem | None:
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        return Problem(
            "missing artifact",
            hash_,
            f"file {file} is missing; loading this output fails, and the next run of its DAG "
            "recomputes the task",
        )
    except OSError as exc:
        return Problem("missing artifact", hash_, f"file {file} cannot be read: {exc}")
    actual = digest(data)
    if actual != hash_:
        return Problem(
            "corrupted artifact",
            hash_,
            f"file {file} hashes to {actual[:12]}…; it is never unpickled",
            "delete the file; the next run of its DAG recomputes the task",
        )
    return None


def _find_orphans(folder: Path, named: set[Path], checkup: Checkup) -> None:
    count = 0
    for file in sorted(folder.rglob("*")) if folder.is_dir() else []:
        if not file.is_file() or file in named:
            continue
        count += 1
        leftover = file.name.startswith(".tmp-")
        checkup.problems.append(
            Problem(
                "orphan file",
                str(file.relative_to(checkup.store)),
                "a temporary file left by an interrupted write"
                if leftover
                else "no artifact row names it (its run's driver stopped before recording it)",
                "delete the file",
            )
        )
    checkup.checked["files"] = len(named) + count


def _check_runs(conn: sqlite3.Connection, checkup: Checkup) -> None:
    rows = conn.execute(
        "SELECT run_id, heartbeat_at FROM runs WHERE status = ?", (RunStatus.RUNNING.value,)
    ).fetchall()
    for run_id, heartbeat in rows:
        if is_stale(heartbeat):
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(heartbeat or 0))
            checkup.problems.append(
                Problem(
                    "dead run",
                    run_id,
                    f"recorded as running, but its driver's last heartbeat was at {when}",
                    "record the run as interrupted, its unfinished tasks as cancelled and its "
                    "unreported attempts as lost (and snapshot it, if big)",
                )
            )
    checkup.checked["runs"] = conn.execute("SELECT count(*) FROM runs").fetchone()[0]


# -- repairs -----------------------------------------------------------------------------------
def _discard_artifact(conn: sqlite3.Connection, root: Path, hash_: str) -> None:
    if conn.execute("SELECT path FROM artifacts WHERE hash = ?", (hash_,)).fetchone()[0]:
        # A corrupted file artifact: the file goes, its row stays (as the cache does).
        (root / ArtifactFiles(root).relative_path(hash_)).unlink(missing_ok=True)
    else:
        conn.execute("DELETE FROM artifacts WHERE hash = ?", (hash_,))


def _delete_file(conn: sqlite3.Connection, root: Path, relative: str) -> None:
    file = (root / relative).resolve()
    if not file.is_relative_to((root / "artifacts").resolve()):
        raise StoreError(f"refusing to delete {file}: it is outside {root / 'artifacts'}")
    file.unlink(missing_ok=True)


def _end_run(conn: sqlite3.Connection, root: Path, run_id: str) -> None:
    now = time.time()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "UPDATE attempts SET status = ?, ended_at = ?, exc_message = ? "
        "WHERE run_id = ? AND status = ?",
        (
            AttemptStatus.LOST.value,
            now,
            "the run's driver stopped before this attempt was reported",
            run_id,
            AttemptStatus.RUNNING.value,
        ),
    )
    conn.execute(
        "UPDATE tasks SET state = ? WHERE run_id = ? AND state IN (?, ?)",
        (TaskState.CANCELLED.value, run_id, TaskState.PENDING.value, TaskState.RUNNING.value),
    )
    bump_revisions(conn, [run_id])
    conn.execute(
        "UPDATE runs SET status = ?, error = ?, ended_at = heartbeat_at "
        "WHERE run_id = ? AND status = ?",
        (
            RunStatus.INTERRUPTED.value,
            "the driver stopped without recording an end (marked by provtask doctor --repair)",
            run_id,
            RunStatus.RUNNING.value,
        ),
    )
    conn.execute("COMMIT")


def _snapshot_ended(run_ids: list[str], root: Path) -> None:
    """Runs just ended by a repair get the snapshots their driver did not live to take."""
    if not run_ids:
        return
    store = Store(root, create=False)
    try:
        for run_id in run_ids:
            store.snapshot(run_id)
    finally:
        store.close()


_REPAIRS = {
    "corrupted artifact": _discard_artifact,
    "orphan file": _delete_file,
    "dead run": _end_run,
}
