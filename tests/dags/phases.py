"""CPU work, then a long GPU phase, then CPU work again (for scaling tests).

With ``store`` (a store directory), the GPU task first waits (up to 5 min) until the store
records a worker of the cpu partition leaving: the CPU phase's worker has been let go."""

import sqlite3
import time
from pathlib import Path

from provtask import DAG, task


@task
def first() -> int:
    return 1


@task(partition="gpu")
def middle(x: int, seconds: float, store: str = "") -> int:
    deadline = time.monotonic() + 300
    while store and time.monotonic() < deadline and not _cpu_worker_left(Path(store)):
        time.sleep(0.5)
    time.sleep(seconds)
    return x


def _cpu_worker_left(store: Path) -> bool:
    with sqlite3.connect(f"file:{store / 'provtask.db'}?mode=ro", uri=True) as db:
        query = "SELECT 1 FROM workers WHERE partition = 'cpu' AND disconnected_at IS NOT NULL"
        return db.execute(query).fetchone() is not None


@task
def last(x: int) -> int:
    return x + 1


with DAG("phases", params={"seconds": 6.0, "store": ""}) as dag:
    last(middle(first(), dag.param("seconds"), dag.param("store")))
