"""Parquet snapshots of finished runs: taken by the store writer process as a big run ends or by
the explicit step ``Store.snapshot``, read as the same frames as SQLite, never stale or
damaged; reading never writes."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import sqlite_utils

from provtask import DAG, Store, task
from provtask.store.connection import DB_NAME
from provtask.store.schema import MIGRATIONS, SCHEMA_VERSION
from provtask.store.snapshot import MIN_ROWS

RUN = "20260101-120000-a1b2c3"
N = MIN_ROWS + 7


def queue_run(store: Store, run_id: str, n: int, status: str = "success") -> None:
    """A run of ``n`` tasks written as the engine writes them: rows, then reports, then the end.
    Every 97th task failed (a traceback, no output); every 13th printed something."""
    writer = store.writer()
    writer.insert("runs", {"run_id": run_id, "dag_name": "demo", "status": "running"})
    for i in range(n):
        task_id = f"simulate[{i}]"
        failed = i % 97 == 0
        writer.insert(
            "tasks",
            {"run_id": run_id, "task_id": task_id, "name": "simulate", "kind": "element"},
        )
        writer.insert(
            "attempts",
            {
                "run_id": run_id,
                "task_id": task_id,
                "attempt": 1,
                "status": "running",
                "partition": "local",
                "submitted_at": 1_700_000_000.0 + i,
            },
        )
        report = {
            "status": "failed" if failed else "success",
            "started_at": 1_700_000_000.5 + i,
            "ended_at": 1_700_000_001.0 + i,
            "worker": f"tcp://127.0.0.1:{40000 + i % 2}",
            "pid": 4000 + i % 2,
            "cpu_time": 0.25,
            "exc_type": "builtins.ValueError" if failed else None,
            "traceback": "Traceback ...\nValueError: no" if failed else None,
            "stdout": "hello\n" if i % 13 == 0 else None,
            "output_hash": None if failed else f"{i:064x}",
        }
        key = {"run_id": run_id, "task_id": task_id, "attempt": 1}
        writer.update("attempts", key, report)
        state = {"state": "failed" if failed else "success", "output_hash": report["output_hash"]}
        writer.update("tasks", {"run_id": run_id, "task_id": task_id}, state)
    writer.update("runs", {"run_id": run_id}, {"status": status})
    writer.close()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("template") / "store"
    store = Store(root)
    queue_run(store, RUN, N)
    store.close()
    return root


@pytest.fixture
def store(template: Path, tmp_path: Path):
    root = tmp_path / "store"
    shutil.copytree(template, root)
    opened = Store(root)
    yield opened
    opened.close()


def reads_table(store: Store, table: str, read) -> tuple[pd.DataFrame, bool]:
    """``read()``'s frame, and whether it read ``table``'s rows from SQLite."""
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    try:
        frame = read()
    finally:
        store.conn.set_trace_callback(None)
    return frame, any(s.startswith(f"SELECT * FROM {table}") for s in statements)


def snapshot_file(store: Store, table: str) -> Path:
    return store.root / "snapshots" / RUN / f"{table}.parquet"


@pytest.mark.parametrize("table", ["attempts", "tasks"])
def test_a_finished_run_is_read_from_its_snapshot_as_the_same_frame(store, table):
    read = getattr(store, table)
    from_sqlite, used_sqlite = reads_table(store, table, lambda: read(RUN))
    assert used_sqlite and len(from_sqlite) == N
    assert not snapshot_file(store, table).exists()  # reading wrote nothing

    assert store.snapshot(RUN) == ["tasks", "attempts"]
    assert snapshot_file(store, table).is_file()
    from_snapshot, used_sqlite = reads_table(store, table, lambda: read(RUN))
    assert not used_sqlite
    pd.testing.assert_frame_equal(from_snapshot, from_sqlite, check_exact=True)
    assert list(from_snapshot.dtypes) == list(from_sqlite.dtypes)


def test_doctor_repair_snapshots_a_big_run_whose_driver_died(tmp_path):
    """A driver killed before its run ended took no snapshot; the repair that records the
    run as interrupted takes it."""
    from provtask.store.doctor import check_store, repair

    store = Store(tmp_path / "store")
    queue_run(store, RUN, N, status="running")  # no heartbeat: its driver is gone
    checkup = repair(check_store(store.root))
    assert [p.kind for p in checkup.repaired] == ["dead run"] and checkup.healthy
    assert store.run(RUN)["status"] == "interrupted"
    assert snapshot_file(store, "tasks").is_file() and snapshot_file(store, "attempts").is_file()
    from_snapshot, used_sqlite = reads_table(store, "tasks", lambda: store.tasks(RUN))
    assert not used_sqlite and len(from_snapshot) == N


def test_reads_never_write(store):
    database = store.root / DB_NAME
    before = (database.stat().st_mtime_ns, sorted(p.name for p in store.root.iterdir()))
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    for _ in range(2):
        store.tasks(RUN)
        store.attempts(RUN)
        store.runs(status="interrupted")
    store.conn.set_trace_callback(None)
    assert not [s for s in statements if s.split()[0].upper() in ("INSERT", "UPDATE", "DELETE")]
    assert (database.stat().st_mtime_ns, sorted(p.name for p in store.root.iterdir())) == before


@task
def noisy(i: int) -> list[int]:
    if i % 1000 == 999:
        raise ValueError(f"{i} is rejected")
    if i % 500 == 0:
        print(f"element {i}")
    return [i, i + 1]


def test_a_big_run_is_snapshotted_by_the_writer_process_as_it_ends(client, store_dir):
    with DAG("snapshot_demo") as dag:
        noisy.map(list(range(MIN_ROWS)))
    result = dag.run(client=client, store=store_dir)
    store = Store(store_dir)
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    assert store.snapshot(result.run_id) == ["tasks", "attempts"]  # waits for the writer
    store.conn.set_trace_callback(None)
    assert not [s for s in statements if s.startswith("INSERT")]  # it took them, not this call
    for table in ("tasks", "attempts"):
        assert (store_dir / "snapshots" / result.run_id / f"{table}.parquet").is_file()
        from_snapshot, used_sqlite = reads_table(
            store, table, lambda t=table: getattr(store, t)(result.run_id)
        )
        assert not used_sqlite
        from_sqlite = getattr(store, f"_{table}")({"run_id": result.run_id})
        pd.testing.assert_frame_equal(from_snapshot, from_sqlite, check_exact=True)
    attempts = store.attempts(result.run_id)
    assert attempts["stdout"].notna().sum() == MIN_ROWS // 500
    assert (attempts["status"] == "failed").sum() == MIN_ROWS // 1000
    store.close()


def test_the_snapshot_serves_what_users_read_from_a_frame(store):
    store.snapshot(RUN)
    attempts = store.attempts(RUN)
    failed = attempts[attempts["status"] == "failed"]
    assert len(failed) == len(range(0, N, 97))
    assert failed["traceback"].str.startswith("Traceback").all()
    assert attempts["duration"].eq(pd.Timedelta(seconds=0.5)).all()
    assert str(attempts["started_at"].dt.tz) == "UTC"
    assert attempts.loc[13, "stdout"] == "hello\n"


def test_a_later_write_to_the_run_makes_the_reader_use_sqlite_again(store):
    store.snapshot(RUN)
    writer = store.writer()
    key = {"run_id": RUN, "task_id": "simulate[5]", "attempt": 1}
    writer.update("attempts", key, {"exc_message": "changed after the run"})
    writer.close()

    frame, used_sqlite = reads_table(store, "attempts", lambda: store.attempts(RUN))
    assert used_sqlite
    assert frame.loc[5, "exc_message"] == "changed after the run"
    store.snapshot(RUN)  # again, at the new revision
    again, used_sqlite = reads_table(store, "attempts", lambda: store.attempts(RUN))
    assert not used_sqlite
    assert again.loc[5, "exc_message"] == "changed after the run"


def test_a_write_to_another_run_keeps_the_snapshot(store):
    store.snapshot(RUN)
    queue_run(store, "20260101-130000-d4e5f6", 3)
    _, used_sqlite = reads_table(store, "tasks", lambda: store.tasks(RUN))
    assert not used_sqlite


def test_rows_added_by_hand_are_seen(store):
    store.snapshot(RUN)
    expected = store.tasks(RUN)
    conn = sqlite3.connect(store.root / DB_NAME)
    conn.execute(
        "INSERT INTO tasks (run_id, task_id, state) VALUES (?, 'extra', 'success')", (RUN,)
    )
    conn.commit()
    conn.close()
    frame = store.tasks(RUN)
    assert len(frame) == len(expected) + 1
    assert frame["task_id"].iloc[-1] == "extra"


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda path: path.write_bytes(path.read_bytes()[:-100]), id="truncated"),
        pytest.param(lambda path: path.write_bytes(b"\0" * path.stat().st_size), id="zeroed"),
        pytest.param(lambda path: path.unlink(), id="missing"),
    ],
)
def test_a_damaged_snapshot_falls_back_to_sqlite_and_is_rewritten(store, damage):
    store.snapshot(RUN)
    expected = store.attempts(RUN)
    damage(snapshot_file(store, "attempts"))

    frame, used_sqlite = reads_table(store, "attempts", lambda: store.attempts(RUN))
    assert used_sqlite
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)
    assert store.snapshot(RUN) == ["tasks", "attempts"]
    again, used_sqlite = reads_table(store, "attempts", lambda: store.attempts(RUN))
    assert not used_sqlite
    pd.testing.assert_frame_equal(again, expected, check_exact=True)


def test_a_snapshot_written_by_other_versions_is_not_used(store):
    store.snapshot(RUN)
    store.conn.execute("UPDATE snapshots SET format = 'schema 8, pandas 2.0.0, pyarrow 14.0.0'")
    _, used_sqlite = reads_table(store, "attempts", lambda: store.attempts(RUN))
    assert used_sqlite


def test_live_and_small_runs_are_not_snapshotted(tmp_path):
    store = Store(tmp_path / "store")
    queue_run(store, RUN, N, status="running")
    queue_run(store, "20260101-130000-d4e5f6", 10)
    assert store.snapshot(RUN) == []
    assert store.snapshot("20260101-130000-d4e5f6") == []
    assert not (tmp_path / "store" / "snapshots").exists()
    assert store.conn.execute("SELECT count(*) FROM snapshots").fetchone()[0] == 0
    store.close()


def test_filtered_reads_of_a_snapshotted_run_come_from_sqlite(store):
    store.snapshot(RUN)
    failed, used_sqlite = reads_table(
        store, "attempts", lambda: store.attempts(RUN, status="failed")
    )
    assert used_sqlite
    assert set(failed["status"]) == {"failed"}


def test_a_store_of_version_7_is_migrated_with_its_data(tmp_path):
    root = tmp_path / "store"
    root.mkdir()
    db = sqlite_utils.Database(root / DB_NAME)
    for migration in MIGRATIONS[:7]:
        migration(db)
    db.execute("PRAGMA user_version = 7")
    db["runs"].insert({"run_id": RUN, "dag_name": "old", "status": "success"})
    db["tasks"].insert({"run_id": RUN, "task_id": "load", "state": "success"})
    db["attempts"].insert({"run_id": RUN, "task_id": "load", "attempt": 1, "status": "success"})
    db.conn.commit()
    db.close()

    store = Store(root)
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.run(RUN)["dag_name"] == "old"
    assert list(store.tasks(RUN)["task_id"]) == ["load"]
    assert list(store.attempts(RUN)["status"]) == ["success"]
    indexes = {row[1] for row in store.conn.execute("PRAGMA index_list(attempts)")}
    assert "idx_attempts_output_hash" not in indexes
    store.close()


def test_columns_of_every_sqlite_type_read_the_same_from_the_snapshot(store):
    """SQLite's dynamic types (integers with NULLs, integers mixed with reals, bytes, all
    NULL) give the same frame from the snapshot, which the writer fills without pandas."""
    store.conn.executescript(
        f"""
        UPDATE attempts SET peak_rss = CASE WHEN rowid % 3 = 0 THEN NULL ELSE rowid * 1024 END,
                            exit_code = CASE rowid % 4 WHEN 0 THEN NULL WHEN 1 THEN 1
                                        ELSE rowid + 0.5 END;
        UPDATE tasks SET label = CASE WHEN rowid % 5 = 0 THEN X'00ff' END;
        UPDATE revisions SET revision = revision + 1 WHERE run_id = '{RUN}';
        """
    )
    expected = {"tasks": store.tasks(RUN), "attempts": store.attempts(RUN)}
    assert expected["attempts"]["peak_rss"].dtype == "float64"
    assert store.snapshot(RUN) == ["tasks", "attempts"]
    for table, frame in expected.items():
        from_snapshot, used_sqlite = reads_table(
            store, table, lambda t=table: getattr(store, t)(RUN)
        )
        assert not used_sqlite
        pd.testing.assert_frame_equal(from_snapshot, frame, check_exact=True)


def test_a_column_mixing_text_and_numbers_is_read_from_sqlite(store):
    store.conn.execute(f"UPDATE attempts SET pid = 'pid-1' WHERE rowid = 3 AND run_id = '{RUN}'")
    store.conn.execute(f"UPDATE revisions SET revision = revision + 1 WHERE run_id = '{RUN}'")
    assert store.snapshot(RUN) == ["tasks"]
    frame, used_sqlite = reads_table(store, "attempts", lambda: store.attempts(RUN))
    assert used_sqlite and frame.loc[2, "pid"] == "pid-1"


def test_a_writer_process_killed_while_snapshotting_leaves_nothing_a_reader_trusts(store):
    """Whether the kill came before, during or after the snapshot, readers get the run's
    frame, the store is healthy, and ``Store.snapshot`` (which waits for the writer
    process or its death) leaves a current snapshot."""
    from provtask.store.doctor import check_store

    expected = store.attempts(RUN)
    writer = store.writer()
    pid = writer.writer_pid
    writer.close(snapshot=(store.root, RUN))
    os.kill(pid, signal.SIGKILL)
    pd.testing.assert_frame_equal(store.attempts(RUN), expected, check_exact=True)
    assert store.snapshot(RUN, timeout=60) == ["tasks", "attempts"]
    from_snapshot, used_sqlite = reads_table(store, "attempts", lambda: store.attempts(RUN))
    assert not used_sqlite
    pd.testing.assert_frame_equal(from_snapshot, expected, check_exact=True)
    assert check_store(store.root).healthy


def test_the_writer_process_takes_the_snapshot_without_pandas(store):
    writer = store.writer()
    pid = writer.writer_pid
    writer.close(snapshot=(store.root, RUN))
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    assert store.snapshot(RUN) == ["tasks", "attempts"]  # waits for the writer process
    store.conn.set_trace_callback(None)
    assert not [s for s in statements if s.startswith("INSERT")]  # it took them
    maps = Path(f"/proc/{pid}/maps").read_text()
    assert "pyarrow" in maps and "pandas" not in maps
