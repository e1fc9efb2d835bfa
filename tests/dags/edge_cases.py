"""Small DAGs for the engine's edge cases; each test picks one by name."""

import os
import threading
import time
from pathlib import Path

from provtask import DAG, task


@task(retries=2)
def flaky(marker_dir: str) -> str:
    """Fails on the first attempt, succeeds on the second."""
    marker = Path(marker_dir) / "flaky-ran-once"
    if not marker.exists():
        marker.touch()
        raise RuntimeError("first attempt fails")
    return "recovered"


@task(retries=1)
def die_once(marker_dir: str) -> str:
    """Kills its worker process on the first attempt."""
    marker = Path(marker_dir) / "died-once"
    if not marker.exists():
        marker.touch()
        os._exit(3)
    return "survived"


@task
def make_lock() -> object:
    return threading.Lock()


@task
def number() -> int:
    return 7


@task
def echo(x: object) -> object:
    return x


@task
def big_array(n: int) -> bytes:
    return bytes(range(256)) * n


@task
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


with DAG("flaky", params={"marker_dir": "."}) as flaky_dag:
    flaky(flaky_dag.param("marker_dir"))

with DAG("die_once", params={"marker_dir": "."}) as die_dag:
    die_once(die_dag.param("marker_dir"))

with DAG("unpicklable_result") as unpicklable_dag:
    echo(make_lock())

with DAG("map_over_int") as map_over_int_dag:
    echo(echo.map(number()))

with DAG("big_output", params={"n": 1024}) as big_dag:
    big_array(big_dag.param("n"))

with DAG("slow", params={"durations": [0.5] * 12}) as slow_dag:
    nap.map(slow_dag.param("durations"))
