"""CPU work, then a long GPU phase, then CPU work again (for scaling tests)."""

import time

from provtask import DAG, task


@task
def first() -> int:
    return 1


@task(partition="gpu")
def middle(x: int, seconds: float) -> int:
    time.sleep(seconds)
    return x


@task
def last(x: int) -> int:
    return x + 1


with DAG("phases", params={"seconds": 6.0}) as dag:
    last(middle(first(), dag.param("seconds")))
