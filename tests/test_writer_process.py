"""The store writer process: its death fails the run loudly and loses nothing committed, it
outlives a killed driver only long enough to commit what it was sent, and it imports only the
store's writer modules."""

from __future__ import annotations

import ast
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from drivers import run_provtask

from provtask import DAG, Store, task
from provtask.errors import StoreError
from provtask.store.connection import DB_NAME
from provtask.store.doctor import check_store
from provtask.store.writer_channel import bootstrap_command, writer_pid


@task
def step(i: int) -> int:
    time.sleep(0.05)
    return i * 2


def slow_map(n: int) -> DAG:
    with DAG("killed_writer") as dag:
        step.map(list(range(n)))
    return dag


def committed_successes(root: Path) -> set[str]:
    """Task ids whose successful attempt a reader of the database sees."""
    conn = sqlite3.connect(root / DB_NAME, timeout=5)
    try:
        rows = conn.execute("SELECT task_id FROM attempts WHERE status = 'success'").fetchall()
    except sqlite3.OperationalError:  # no tables yet
        return set()
    finally:
        conn.close()
    return {task_id for (task_id,) in rows}


def wait_for(condition, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is dead too
        return stat.read().split(")")[-1].split()[0] != "Z"


def test_a_writer_process_killed_mid_run_fails_the_run_and_a_rerun_reuses_what_was_committed(
    tmp_path,
):
    root = tmp_path / "store"
    dag = slow_map(400)  # ~10 s on 2 workers: long enough to be killed in the middle
    handle = dag.submit(store=root, n_workers=2)
    assert wait_for(lambda: len(committed_successes(root)) >= 20), "no attempt was committed"
    pid = writer_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)

    assert handle.wait(timeout=120), "the run did not end after its writer process died"
    with pytest.raises(StoreError, match=r"store writer process .* died \(killed by signal 9\)"):
        handle.result()
    store = Store(root)
    run = store.run(handle.run_id)
    assert run["status"] == "failed"
    assert "store writer process" in run["error"]
    committed = committed_successes(root)
    assert 20 <= len(committed) < 400  # killed mid-run: some committed, not all
    assert check_store(root).healthy
    doctor = run_provtask("doctor", store=root)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr

    rerun = slow_map(400).run(store=root, n_workers=2)  # a new writer process
    assert rerun.ok
    states = store.tasks(rerun.run_id).set_index("task_id")["state"]
    assert (states[sorted(committed)] == "cached").all()  # every committed result reused
    ran = {task_id for task_id in states[states == "success"].index if "[" in task_id}
    assert ran == {f"step[{i}]" for i in range(400)} - committed
    assert rerun["step"] == [i * 2 for i in range(400)]
    store.close()


DRIVER = textwrap.dedent(
    """
    import sys, time
    from provtask import Store

    store = Store(sys.argv[1])
    writer = store.writer()
    writer.insert("runs", {"run_id": "r", "dag_name": "d", "status": "running"})
    writer.flush()
    for i in range(1000):
        writer.insert("tasks", {"run_id": "r", "task_id": f"t[{i}]", "state": "pending"})
    print(writer.writer_pid, flush=True)
    time.sleep(600)
    """
)


def test_the_writer_process_of_a_killed_driver_commits_what_it_was_sent_and_exits(tmp_path):
    root = tmp_path / "store"
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(root)], stdout=subprocess.PIPE, text=True
    )
    try:
        pid = int(driver.stdout.readline())
        time.sleep(1.0)  # the rows leave the driver within its 0.2 s window
        driver.kill()
        driver.wait(timeout=30)
        assert wait_for(lambda: not alive(pid), timeout=30), "the writer process outlived it"
    finally:
        driver.kill()
        driver.stdout.close()
    store = Store(root)
    assert len(store.conn.execute("SELECT * FROM tasks").fetchall()) == 1000
    assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store.close()


def test_an_unwritable_value_is_a_store_error_not_a_lost_row(tmp_path):
    store = Store(tmp_path / "store")
    writer = store.writer()
    writer.insert("runs", {"run_id": "r", "dag_name": "d", "status": "running"})
    writer.flush()
    writer.insert("runs", {"run_id": "r2", "dag_name": lambda: None, "status": "running"})
    with pytest.raises(StoreError, match="writing provenance to the store failed"):
        writer.flush()
    with pytest.raises(StoreError):
        writer.insert("runs", {"run_id": "r3", "dag_name": "d", "status": "running"})
    assert writer.salvage("runs", {"run_id": "r"}, {"status": "failed"})
    assert store.conn.execute("SELECT run_id, status FROM runs").fetchall() == [("r", "failed")]
    store.close()


def test_the_writer_process_imports_only_the_store_writer_modules():
    probe = subprocess.run(
        bootstrap_command("import provtask.store.writer_process\nprint(sorted(sys.modules))"),
        capture_output=True,
        text=True,
        check=True,
    )
    modules = set(ast.literal_eval(probe.stdout))
    assert "provtask.store.writer_process" in modules
    heavy = {"pandas", "pyarrow", "numpy", "dask", "distributed", "sqlite_utils", "cloudpickle"}
    assert not {name for name in modules if name.split(".")[0] in heavy}
    outside_store = {
        name for name in modules if name.startswith("provtask") and ".store." not in name
    }
    assert outside_store == {"provtask", "provtask.store", "provtask.states"}  # bare packages
    assert "provtask.store.store" not in modules


def test_a_running_writer_process_has_no_pandas_loaded(tmp_path):
    store = Store(tmp_path / "store")
    writer = store.writer()
    writer.insert("runs", {"run_id": "r", "dag_name": "d", "status": "running"})
    writer.flush()
    maps = Path(f"/proc/{writer.writer_pid}/maps").read_text()
    assert "_sqlite3" in maps and "pandas" not in maps  # not even after snapshots
    writer.close()
    store.close()
