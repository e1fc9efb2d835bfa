"""Tasks that sleep on the cpu partition, each allowed one retry (for fault tests)."""

import time

from provtask import DAG, task


@task
def indices(n: int) -> list[int]:
    return list(range(n))


@task(retries=1)
def nap(index: int, seconds: float) -> int:
    time.sleep(seconds)
    return index


with DAG("slow_on_cpu", params={"n": 2, "seconds": 5.0}) as dag:
    nap.map(indices(dag.param("n")), seconds=dag.param("seconds"))
