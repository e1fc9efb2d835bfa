"""Three batch jobs of the local SLURM that end three ways (tests/test_sacct.py): one runs a
quick task and is cancelled when idle, one runs until the test cuts its time limit
(TIMEOUT), one outgrows the memory its job asked for (killed by SLURM)."""

import time
from pathlib import Path

from provtask import DAG, task


@task(partition="cpu")
def quick() -> str:
    return "done"


@task(partition="long")
def stuck(seconds: float, started: str) -> None:
    Path(started).touch()  # tells the test that the task holds its job now
    time.sleep(seconds)


@task(partition="small")
def hog(megabytes: int) -> None:
    time.sleep(2)  # the worker's connection reaches the store before SLURM kills the job
    block = b"x" * (megabytes * 2**20)  # written, so resident
    time.sleep(60)
    del block


with DAG("job_endings", params={"seconds": 300.0, "started": "started", "megabytes": 1500}) as dag:
    quick()
    stuck(dag.param("seconds"), dag.param("started"))
    hog(dag.param("megabytes"))
