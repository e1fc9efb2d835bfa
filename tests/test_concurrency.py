"""One store, many processes: four drivers (two DAGs, and one DAG twice) write it at once
while a fifth process queries it with pandas in a loop. No lock errors, no lost rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from provtask import Store

N = 30
DAG_FILE = """
import time
from provtask import DAG, task


@task
def {name}_step(i: int) -> int:
    time.sleep(0.02)
    return i * {factor}


@task
def {name}_total(values: list[int]) -> int:
    return sum(values)


with DAG("{name}") as dag:
    {name}_total({name}_step.map(list(range({n}))))
"""

# Counts rows with the public API and with plain pandas until told to stop; committed rows
# must never disappear, and no query may fail.
READER = """
import json, sqlite3, sys, time
from pathlib import Path
import pandas as pd
from provtask import Store

root, stop = Path(sys.argv[1]), Path(sys.argv[2])
while not (root / "provtask.db").exists():
    time.sleep(0.01)
queries, errors, last = 0, [], 0
while not stop.exists():
    try:
        store = Store(root, create=False)
        runs = store.runs()
        attempts = pd.read_sql_query("SELECT * FROM attempts", store.conn)
        for run_id in runs["run_id"]:
            store.tasks(run_id)
        store.close()
        if len(attempts) < last:
            errors.append(f"attempt rows went from {last} to {len(attempts)}")
        last = len(attempts)
        queries += 1
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
print(json.dumps({"queries": queries, "errors": errors}))
"""


def test_four_runs_and_a_reader_share_one_store(tmp_path, store_dir):
    for name, factor in (("alpha", 2), ("beta", 3)):
        (tmp_path / f"{name}.py").write_text(DAG_FILE.format(name=name, factor=factor, n=N))
    env = {**os.environ, "PROVTASK_STORE": str(store_dir)}
    stop = tmp_path / "stop"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(store_dir), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    options = ["--workers", "1", "--no-progress", "--no-cache"]
    drivers = [
        subprocess.Popen(
            [sys.executable, "-m", "provtask.cli", "run", str(tmp_path / f"{name}.py"), *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env=env,
        )
        for name in ("alpha", "beta", "alpha", "alpha")
    ]
    try:
        outcomes = [driver.communicate(timeout=240) for driver in drivers]
    finally:
        stop.touch()
        read, read_errors = reader.communicate(timeout=60)

    for driver, (_, stderr) in zip(drivers, outcomes, strict=True):
        assert driver.returncode == 0, stderr
        assert "locked" not in stderr
    summary = json.loads(read)
    assert summary["errors"] == [], read_errors
    assert summary["queries"] > 0

    store = Store(store_dir)
    runs = store.runs()
    assert sorted(runs["dag_name"]) == ["alpha", "alpha", "alpha", "beta"]
    assert set(runs["status"]) == {"success"}
    for row in runs.itertuples():
        tasks = store.tasks(row.run_id)
        attempts = store.attempts(row.run_id)
        assert len(tasks) == N + 2  # the map, its elements and the total: none lost
        assert set(tasks["state"]) == {"success"}
        assert len(attempts) == N + 1 and set(attempts["status"]) == {"success"}
        factor = 2 if row.dag_name == "alpha" else 3
        assert store.output(row.run_id, f"{row.dag_name}_total") == factor * sum(range(N))
    assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
