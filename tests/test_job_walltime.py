"""Batch jobs that end on time, on the real local SLURM (``.ci/start-slurm.sh``).

A task goes only to a worker whose job has its walltime left (else a fresh job is started
for it), and an attempt lost because its job reached its walltime is recorded with cause
``job_walltime`` and retried without using the task's retries. SLURM counts time limits in
whole minutes, so the jobs here last 1 and 3 minutes.
"""

from __future__ import annotations

import subprocess
import textwrap
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from slurm import require_accounting, require_slurm, wait_until_gone, write_clusters

import provtask
from provtask import Store
from provtask.clusters.config import parse_clusters
from provtask.errors import ConfigError

pytestmark = pytest.mark.timeout(420)


@pytest.fixture(scope="module", autouse=True)
def slurm() -> None:
    require_slurm()


def clusters_file(tmp_path: Path, **settings: object) -> Path:
    """One cpu partition of the local SLURM, one core per job."""
    cpu = {
        "queue": "cpu",
        "cores": 1,
        "memory": "1GB",
        "job-name": "wall15-test",
        "idle-timeout": "5s",
        **settings,
    }
    return write_clusters(tmp_path, {"cpu": cpu})


def sacct_job(job_id: str) -> dict[str, str]:
    """State, Start and End of a batch job, as SLURM's accounting has them."""
    command = ["sacct", "--noheader", "--allocations", "--parsable2", "--jobs", job_id]
    done = subprocess.run(
        [*command, "--format=State,Start,End"], capture_output=True, text=True, check=True
    )
    line = done.stdout.strip()
    return dict(zip(["State", "Start", "End"], line.split("|"), strict=True))


def dag_file(tmp_path: Path, source: str) -> provtask.DAG:
    path = tmp_path / "dag.py"
    path.write_text(textwrap.dedent(source))
    return provtask.load_dag_file(path)


def test_a_long_task_goes_to_a_fresh_job_not_to_one_about_to_end(tmp_path, store_dir):
    # `first` keeps job A busy for 45 s of its 3 minutes, so A has under 140 s left when
    # `long` (walltime 140 s) is ready: the pool starts job B for it instead.
    dag = dag_file(
        tmp_path,
        """
        import os, time
        from provtask import DAG, task

        @task
        def first(seconds: float) -> str:
            time.sleep(seconds)
            return os.environ["SLURM_JOB_ID"]

        @task(walltime="00:02:20")
        def long(after: str) -> str:
            return os.environ["SLURM_JOB_ID"]

        with DAG("fresh_job") as dag:
            long(first(45.0))
        """,
    )
    margin = {"lifetime-margin": "30s", "max-jobs": 2}
    config = clusters_file(tmp_path, walltime="00:03:00", **margin)
    result = dag.run(store=store_dir, clusters=config, cache=False)
    assert result.ok, result.errors

    store = Store(store_dir)
    attempts = store.attempts(run=result.run_id).set_index("task_id")
    assert len(store.attempts(run=result.run_id, task="long")) == 1  # never started on A
    job_a, job_b = attempts.loc["first", "batch_job_id"], attempts.loc["long", "batch_job_id"]
    assert job_a != job_b
    assert store.output(result.run_id, "long") == job_b
    jobs = store.jobs(result.run_id).set_index("job_id")
    # B was submitted for `long`, once `first` had ended on A ...
    assert jobs.loc[job_b, "submitted_at"] >= attempts.loc["first", "ended_at"]
    # ... while A's worker was still there to take it, had it had time enough left.
    workers = store.workers(result.run_id).set_index("batch_job_id")
    assert workers.loc[job_a, "disconnected_at"] > attempts.loc["long", "started_at"]
    assert wait_until_gone(set(jobs.index)) == set()


def test_an_attempt_cut_by_its_jobs_walltime_is_retried_free_on_a_new_job(tmp_path, store_dir):
    require_accounting()  # to ask sacct how the first job ended
    marker = tmp_path / "first-attempt"
    dag = dag_file(
        tmp_path,
        f"""
        import os, time
        from pathlib import Path
        from provtask import DAG, task

        @task(retries=0)
        def outlive() -> str:
            marker = Path({str(marker)!r})
            if not marker.exists():  # the first attempt runs past its job's 1 minute
                marker.write_text(os.environ["SLURM_JOB_ID"])
                time.sleep(600)
            return os.environ["SLURM_JOB_ID"]

        with DAG("outlive") as dag:
            outlive()
        """,
    )
    config = clusters_file(tmp_path, walltime="00:01:00", **{"lifetime-margin": "10s"})
    result = dag.run(store=store_dir, clusters=config, cache=False)
    assert result.ok, result.errors

    store = Store(store_dir)
    tries = store.attempts(run=result.run_id, task="outlive").set_index("attempt")
    assert list(tries.index) == [1, 2]  # retries=0, yet a second attempt
    first_job = marker.read_text()
    assert tries.loc[1, "status"] == "lost"
    assert tries.loc[1, "failure_cause"] == "job_walltime"
    assert "reached its walltime" in tries.loc[1, "exc_message"]
    assert "without using a retry" in tries.loc[1, "exc_message"]
    assert tries.loc[2, "status"] == "success"
    assert tries.loc[2, "batch_job_id"] != first_job
    assert store.output(result.run_id, "outlive") == tries.loc[2, "batch_job_id"]
    assert sacct_job(first_job)["State"] == "TIMEOUT"  # SLURM ended it at its walltime
    assert wait_until_gone(set(store.jobs(result.run_id)["job_id"].dropna())) == set()


def test_a_worker_retires_before_its_jobs_end_and_a_fresh_job_takes_the_rest(tmp_path, store_dir):
    require_accounting()  # to ask sacct how the first job ended
    # Ten 4 s steps, each with a walltime of 30 s, in jobs of 1 minute whose workers take
    # no task in their last 20 s: the first job cannot run them all. With max-jobs 2 the
    # next job starts while the first still holds the last step's result, which moves over
    # when the first retires (a lone worker could not hand it over: it would idle out its
    # job).
    dag = dag_file(
        tmp_path,
        """
        import time
        from provtask import DAG, task

        @task(walltime="30s")
        def step(previous: int) -> int:
            time.sleep(4)
            return previous + 1

        with DAG("steps") as dag:
            value = 0
            for _ in range(10):
                value = step(value)
        """,
    )
    margin = {"lifetime-margin": "20s", "max-jobs": 2}
    config = clusters_file(tmp_path, walltime="00:01:00", **margin)
    result = dag.run(store=store_dir, clusters=config, cache=False)
    assert result.ok, result.errors

    store = Store(store_dir)
    attempts = store.attempts(run=result.run_id).sort_values("started_at")
    assert (attempts["attempt"] == 1).all() and (attempts["status"] == "success").all()
    jobs = list(dict.fromkeys(attempts["batch_job_id"]))  # in the order they ran steps
    assert len(jobs) >= 2
    first = sacct_job(jobs[0])
    assert first["State"] == "COMPLETED"  # its worker retired: the walltime never hit it
    start, end = (
        pd.Timestamp(datetime.fromisoformat(first[key]).timestamp(), unit="s", tz="UTC")
        for key in ("Start", "End")
    )
    assert end < start + pd.Timedelta(seconds=60)
    on_first = attempts[attempts["batch_job_id"] == jobs[0]]
    latest = start + pd.Timedelta(seconds=60 - 30 + 1)
    assert (on_first["started_at"] <= latest).all()  # each had its 30 s left
    assert wait_until_gone(set(jobs)) == set()


def test_a_lifetime_margin_needs_a_longer_walltime():
    partition = {"scheduler": "slurm", "cores": 1, "memory": "1GB", "walltime": "00:05:00"}
    with pytest.raises(ConfigError, match="lifetime-margin: 300 s needs a walltime longer"):
        parse_clusters(
            {"default": "cpu", "partitions": {"cpu": {**partition, "lifetime-margin": "5m"}}}
        )
    given = parse_clusters({"default": "cpu", "partitions": {"cpu": partition}})
    assert given.partitions["cpu"].lifetime_margin == 30  # a tenth of the walltime
