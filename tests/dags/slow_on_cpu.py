"""Tasks that sleep on the cpu partition, each allowed one retry (for fault tests).

With ``markers`` (a directory), each task writes a file named by its index holding its batch
job id when it starts; with ``together`` > 0 as well, it first waits until that many tasks
have started, so that many run at once (on different one-thread workers)."""

import os
import time
from pathlib import Path

from provtask import DAG, task


@task
def indices(n: int) -> list[int]:
    return list(range(n))


@task(retries=1)
def nap(index: int, seconds: float, markers: str = "", together: int = 0) -> int:
    if markers:
        Path(markers, str(index)).write_text(os.environ.get("SLURM_JOB_ID", ""))
        deadline = time.monotonic() + 300
        while len(os.listdir(markers)) < together and time.monotonic() < deadline:
            time.sleep(0.2)
    time.sleep(seconds)
    return index


with DAG("slow_on_cpu", params={"n": 2, "seconds": 5.0, "markers": "", "together": 0}) as dag:
    nap.map(
        indices(dag.param("n")),
        seconds=dag.param("seconds"),
        markers=dag.param("markers"),
        together=dag.param("together"),
    )
