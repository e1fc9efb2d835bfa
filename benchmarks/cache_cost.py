"""Cost of caching per task: keys and store lookups, and the speed of a fully cached rerun.

    python -m benchmarks.cache_cost [--tasks 2000] [--rounds 3] [--workers 2]

Each round runs the same DAG of no-op tasks (a ``.map`` fed by one upstream task, so every
element has a constant and an upstream input) three times on one ``LocalCluster``:

- ``cache=False`` in a fresh store: keys are computed, nothing is looked up;
- caching on, in another fresh store: every task is keyed and looked up, and misses;
- the same again in that store: every task is a hit and none runs.

It prints tasks per second of each (median / min / max) and the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from distributed import Client

from provtask import DAG, task

from .common import describe, local_client


@task
def numbers(n: int) -> list[int]:
    return list(range(n))


@task
def noop(offset: int, values: list[int]) -> int:
    return offset


def timed_run(client: Client, n: int, store: str, **options: object) -> tuple[float, dict]:
    with DAG("cache-bench") as dag:
        noop.map(list(range(n)), values=numbers(8))
    start = time.perf_counter()
    result = dag.run(client=client, store=store, **options)
    elapsed = time.perf_counter() - start
    assert result.ok, result.errors
    return (n + 1) / elapsed, {"cached": result.progress.cached, "done": result.progress.success}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    off, cold, hit = [], [], []
    with local_client(args.workers) as client, tempfile.TemporaryDirectory() as tmp:
        timed_run(client, 200, f"{tmp}/warm-up")
        for round_no in range(args.rounds):
            off.append(timed_run(client, args.tasks, f"{tmp}/off-{round_no}", cache=False)[0])
            rate, counts = timed_run(client, args.tasks, f"{tmp}/on-{round_no}")
            assert counts["cached"] == 0
            cold.append(rate)
            rate, counts = timed_run(client, args.tasks, f"{tmp}/on-{round_no}")
            assert counts["cached"] == args.tasks + 1
            hit.append(rate)
    per_task_ms = [1000 / c - 1000 / o for c, o in zip(cold, off, strict=True)]
    print(f"{args.tasks} no-op tasks, {args.workers} workers x 1 thread, {args.rounds} rounds")
    print(f"cache off (keys only)        tasks/s: {describe(off)}")
    print(f"cache on, all misses         tasks/s: {describe(cold)}")
    print(f"cache on, all hits (rerun)   tasks/s: {describe(hit)}")
    print(
        f"lookup cost per task: median {statistics.median(per_task_ms):.3f} ms; "
        f"ratio misses/off {statistics.median(c / o for c, o in zip(cold, off, strict=True)):.2f}; "
        f"ratio hits/off {statistics.median(h / o for h, o in zip(hit, off, strict=True)):.2f}"
    )


if __name__ == "__main__":
    main()
