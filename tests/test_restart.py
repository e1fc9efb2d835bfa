"""Restart after a crash and `provtask replay`, as a user runs them: real driver processes,
killed with SIGKILL, and the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from drivers import start_provtask

from provtask import Store

N = 60
CRASHING = f"""
import time
from pathlib import Path

from provtask import DAG, task

COUNTS = Path(__file__).parent / "counts"


@task
def work(i: int) -> int:
    with open(COUNTS / str(i), "a") as f:
        f.write("x")
    time.sleep(0.2)
    return i * i


@task
def total(values: list[int]) -> int:
    return sum(values)


with DAG("restart") as dag:
    total(work.map(list(range({N}))))
"""

FLAKY = """
from pathlib import Path

from provtask import DAG, task

BROKEN = Path(__file__).parent / "broken"


@task
def prepare(n: int) -> list[int]:
    return list(range(n))


@task(memory="1GB")
def solve(values: list[int]) -> int:
    if BROKEN.exists():
        raise MemoryError("out of memory")
    return sum(values)


with DAG("flaky") as dag:
    solve(prepare(5))
"""


def provtask(*args: str, cwd: Path, store: Path, **popen: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "provtask.cli", *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
        env={**os.environ, "PROVTASK_STORE": str(store)},
        **popen,
    )


def executions(folder: Path) -> dict[int, int]:
    return {int(p.name): len(p.read_text()) for p in folder.iterdir()}


def test_a_killed_driver_is_finished_by_replay_without_running_a_task_twice(tmp_path, store_dir):
    dag_file = tmp_path / "crash.py"
    dag_file.write_text(CRASHING)
    folder = tmp_path / "counts"
    folder.mkdir()
    driver = start_provtask(
        "run", str(dag_file), "--workers", "2", store=store_dir, cwd=tmp_path, own_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while len(list(folder.iterdir())) < N // 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(driver.pid, signal.SIGKILL)  # the driver dies without recording anything
        driver.wait()
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # and its worker processes with it
    time.sleep(0.5)

    store = Store(store_dir)
    killed = store.runs().iloc[0]
    assert killed["status"] == "running"  # until its heartbeat is stale
    attempts = store.attempts(killed["run_id"])
    finished = set(attempts.loc[attempts["status"] == "success", "task_id"])
    assert 0 < len(finished) < N

    replayed = provtask("replay", killed["run_id"], "--no-progress", cwd=tmp_path, store=store_dir)
    assert replayed.returncode == 0, replayed.stderr
    new_run = store.runs().iloc[0]
    assert new_run["replay_of"] == killed["run_id"] and new_run["status"] == "success"
    assert store.output(new_run["run_id"], "total") == sum(i * i for i in range(N))
    counted = executions(folder)
    assert set(counted) == set(range(N))
    assert all(counted[int(t[len("work[") : -1])] == 1 for t in finished)  # none ran twice
    states = store.tasks(new_run["run_id"]).set_index("task_id")["state"]
    assert {t for t in finished} <= set(states[states == "cached"].index)

    rerun = provtask("run", str(dag_file), "--no-progress", cwd=tmp_path, store=store_dir)
    assert rerun.returncode == 0, rerun.stderr
    assert executions(folder) == counted  # a plain rerun: everything is cached
    last = store.tasks(store.runs().iloc[0]["run_id"])
    assert set(last.loc[last["kind"] != "map", "state"]) == {"cached"}


def test_replay_with_new_resources_reruns_the_failed_task_only(tmp_path, store_dir):
    dag_file = tmp_path / "flaky.py"
    dag_file.write_text(FLAKY)
    (tmp_path / "broken").touch()
    failed = provtask("run", str(dag_file), "--no-progress", cwd=tmp_path, store=store_dir)
    assert failed.returncode == 1
    original = Store(store_dir).runs().iloc[0]["run_id"]
    (tmp_path / "broken").unlink()
    dag_file.write_text(FLAKY.replace("def solve", "# more memory helps\ndef solve"))

    replayed = provtask(
        "replay",
        original,
        "--set",
        "memory=16GB",
        "--set",
        "walltime=4h",
        "--no-progress",
        cwd=tmp_path,
        store=store_dir,
    )

    assert replayed.returncode == 0, replayed.stderr
    assert "warning: the DAG file" in replayed.stderr and "has changed" in replayed.stderr
    store = Store(store_dir)
    run_id = store.runs().iloc[0]["run_id"]
    tasks = store.tasks(run_id).set_index("task_id")
    assert tasks.loc["prepare", "state"] == "cached" and tasks.loc["solve", "state"] == "success"
    attempt = store.attempts(run_id).set_index("task_id").loc["solve"]
    assert json.loads(attempt["resources"])["memory"] == 16_000_000_000
    assert json.loads(attempt["resources"])["walltime"] == 4 * 3600
    old = store.attempts(original).set_index("task_id").loc["solve"]
    assert json.loads(old["resources"])["memory"] == 1_000_000_000
    assert store.output(run_id, "solve") == 10

    bad = provtask("replay", original, "--set", "memory=lots", cwd=tmp_path, store=store_dir)
    assert bad.returncode == 2 and "memory: cannot read 'lots' as a size" in bad.stderr
