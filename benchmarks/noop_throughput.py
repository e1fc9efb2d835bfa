"""No-op task throughput: provtask (full provenance) vs plain ``client.map``, same cluster.

    python -m benchmarks.noop_throughput [--tasks 2000] [--rounds 5] [--workers 2]

Both run on one ``LocalCluster`` (single-threaded worker processes) started once. Each
round runs plain Dask first, then provtask with a fresh store, and the script prints the
median / min / max tasks per second of each and the ratio provtask / Dask. (``python -m
benchmarks`` runs each framework in a process of its own instead.)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from distributed import Client, wait

from provtask import DAG

from .common import describe, local_client
from .engine import noop, noop_task


def plain_dask(client: Client, n: int, round_no: int) -> float:
    start = time.perf_counter()
    futures = client.map(noop, range(n), key=[f"noop-{round_no}-{i}" for i in range(n)])
    wait(futures)
    elapsed = time.perf_counter() - start
    del futures
    return n / elapsed


def provtask_run(client: Client, n: int, store: str) -> float:
    with DAG("noop-bench") as dag:
        noop_task.map(list(range(n)))
    start = time.perf_counter()
    result = dag.run(client=client, store=store)
    elapsed = time.perf_counter() - start
    assert result.ok, result.errors
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    dask_rates, provtask_rates = [], []
    with local_client(args.workers) as client, tempfile.TemporaryDirectory() as tmp:
        plain_dask(client, 200, -1)  # warm-up both: imports, connections, caches
        provtask_run(client, 200, f"{tmp}/warm-up")
        for round_no in range(args.rounds):
            dask_rates.append(plain_dask(client, args.tasks, round_no))
            provtask_rates.append(provtask_run(client, args.tasks, f"{tmp}/store-{round_no}"))
    ratios = [p / d for p, d in zip(provtask_rates, dask_rates, strict=True)]
    print(f"{args.tasks} no-op tasks, {args.workers} workers x 1 thread, {args.rounds} rounds")
    print(f"plain dask client.map  tasks/s: {describe(dask_rates)}")
    print(f"provtask (provenance)  tasks/s: {describe(provtask_rates)}")
    print(
        f"ratio provtask/dask: median {statistics.median(ratios):.2f} "
        f"(min {min(ratios):.2f}, max {max(ratios):.2f})"
    )


if __name__ == "__main__":
    main()
