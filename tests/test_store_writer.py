"""The run's writer checkpoints the WAL itself: commits reach the database file within seconds,
and an open reader neither blocks it nor is blocked."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

from provtask import Store
from provtask.store.connection import DB_NAME

RUN = "20260101-120000-a1b2c3"


def rows_in_database_file_alone(root: Path, scratch: Path) -> int:
    """Tasks in a copy of ``provtask.db`` without its ``-wal`` file: what a backup of the
    database file, or a disk after a power loss, would hold."""
    scratch.mkdir(exist_ok=True)
    copy = scratch / DB_NAME
    shutil.copyfile(root / DB_NAME, copy)
    conn = sqlite3.connect(copy)
    try:
        return conn.execute("SELECT count(*) FROM tasks").fetchone()[0]
    except sqlite3.DatabaseError:  # no tables in the file yet, or copied mid-checkpoint
        return 0
    finally:
        conn.close()
        copy.unlink()


def wait_for(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def queue_tasks(writer, start: int, n: int) -> None:
    for i in range(start, start + n):
        writer.insert("tasks", {"run_id": RUN, "task_id": f"t[{i}]", "state": "success"})


def test_a_few_committed_rows_reach_the_database_file_without_waiting_for_more(tmp_path):
    store = Store(tmp_path / "store")
    writer = store.writer()
    queue_tasks(writer, 0, 5)  # far fewer pages than SQLite's own checkpoint waits for
    writer.flush()
    try:
        assert wait_for(lambda: rows_in_database_file_alone(store.root, tmp_path / "copy") == 5)
    finally:
        writer.close()
        store.close()


def test_an_open_reader_and_the_checkpoints_do_not_block_each_other(tmp_path):
    store = Store(tmp_path / "store")
    writer = store.writer()
    queue_tasks(writer, 0, 10)
    writer.flush()
    reader = sqlite3.connect(store.root / DB_NAME, timeout=5, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM tasks").fetchone()[0] == 10
    try:
        for batch in range(1, 5):  # commits over more than a checkpoint interval
            queue_tasks(writer, batch * 10, 10)
            writer.flush(timeout=10)
            time.sleep(0.4)
        # The reader still sees the database as it was when its transaction started.
        assert reader.execute("SELECT count(*) FROM tasks").fetchone()[0] == 10
    finally:
        reader.execute("COMMIT")
        reader.close()
    assert store.conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 50
    queue_tasks(writer, 50, 1)
    writer.flush()
    assert wait_for(lambda: rows_in_database_file_alone(store.root, tmp_path / "copy") == 51)
    writer.close()
    store.close()
