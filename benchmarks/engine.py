"""Task throughput, efficiency and latency of one framework: plain distributed or provtask.

    python -m benchmarks.engine --framework dask|dask-batched|provtask [--workers 2]
                                [--rounds 5] [--quick] [--json]

Starts one ``LocalCluster`` (``--workers`` single-threaded worker processes), warms it up,
then each round runs every scenario once:

- ``no-op tasks/s``: 2,000 tasks returning their argument;
- ``efficiency 10 ms`` / ``1 ms`` / ``1 s``: tasks sleeping that long (400, 2,000 and 6 of
  them); efficiency = Σ task durations / (slots × makespan), slots = workers, each task's
  duration measured inside it (``time.sleep`` overshoots, by ~2 % at 10 ms);
- ``chain ms per hop``: 1,000 tasks, each taking the previous one's output.

Plain distributed (``dask``) uses ``client.map`` / ``client.submit`` with fresh keys;
provtask runs a DAG with ``dag.run(client=...)`` into a fresh store each time (full
provenance, caching on, every task a cache miss), and its makespan ends when the run's
provenance is committed. ``dask-batched`` is provtask's execution plan without provenance:
plain distributed running the tasks grouped as provtask groups them (batches of at most
0.1 s of work and 250 tasks, a chain as one task), so provtask / dask-batched is the cost
of per-task provenance.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from provtask import DAG, task
from provtask.engine.batching import OBSERVED, Durations

from .common import Figures, local_client, parser, report, rounds_of

UNITS = {"no-op tasks/s": "tasks/s", "chain ms per hop": "ms"}


def noop(x: int) -> int:
    return x


def nap(i: int, seconds: float) -> float:
    """Sleeps; returns how long it took."""
    start = time.perf_counter()
    time.sleep(seconds)
    return time.perf_counter() - start


def inc(x: int) -> int:
    return x + 1


noop_task = task(noop)
nap_task = task(nap)
inc_task = task(inc)


class PlainDask:
    """Each scenario with distributed's own API."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def map(self, fn: Callable, n: int, **constants: Any) -> tuple[float, list]:
        """Seconds until every task is done, and their values."""
        from distributed import wait

        start = time.perf_counter()
        futures = self.client.map(fn, range(n), **constants, pure=False)
        wait(futures)
        elapsed = time.perf_counter() - start
        assert all(f.status == "finished" for f in futures)
        return elapsed, self.client.gather(futures)

    def chain(self, n: int) -> float:
        start = time.perf_counter()
        future = self.client.submit(inc, 0, pure=False)
        for _ in range(n - 1):
            future = self.client.submit(inc, future, pure=False)
        assert future.result() == n
        return time.perf_counter() - start


def run_batch(fn: Callable, items: range, constants: dict[str, Any]) -> list:
    return [fn(i, **constants) for i in items]


def run_chain(n: int) -> int:
    value = inc(0)
    for _ in range(n - 1):
        value = inc(value)
    return value


class BatchedDask(PlainDask):
    """Plain distributed with provtask's batches and fused chains, and no provenance."""

    def __init__(self, client: Any, slots: int) -> None:
        super().__init__(client)
        self.slots = slots

    def map(self, fn: Callable, n: int, **constants: Any) -> tuple[float, list]:
        from distributed import wait

        durations = Durations()
        for _ in range(OBSERVED):  # provtask learns the durations; here they are known
            durations.observe("task", constants.get("seconds", 1e-5))
        size = durations.batch_size("task", n, self.slots)
        chunks = [range(first, min(n, first + size)) for first in range(0, n, size)]
        start = time.perf_counter()
        futures = self.client.map(run_batch, [fn] * len(chunks), chunks, constants=constants)
        wait(futures)
        elapsed = time.perf_counter() - start
        return elapsed, [value for chunk in self.client.gather(futures) for value in chunk]

    def chain(self, n: int) -> float:
        start = time.perf_counter()
        assert self.client.submit(run_chain, n, pure=False).result() == n
        return time.perf_counter() - start


class Provtask:
    """Each scenario as a provtask DAG, into a fresh store per run."""

    def __init__(self, client: Any, folder: Path) -> None:
        self.client = client
        self.folder = folder
        self.runs = 0

    def _run(self, dag: DAG, last: Any) -> tuple[float, Any]:
        """Seconds until the run's provenance is committed, and the value of ``last``."""
        self.runs += 1
        start = time.perf_counter()
        result = dag.run(client=self.client, store=self.folder / f"store-{self.runs}")
        elapsed = time.perf_counter() - start
        assert result.ok, result.errors
        return elapsed, result[last]

    def map(self, fn: Callable, n: int, **constants: Any) -> tuple[float, list]:
        decorated = {noop: noop_task, nap: nap_task}[fn]
        with DAG("engine-bench") as dag:
            ref = decorated.map(list(range(n)), **constants)
        return self._run(dag, ref)

    def chain(self, n: int) -> float:
        with DAG("engine-bench-chain") as dag:
            ref = inc_task(0)
            for _ in range(n - 1):
                ref = inc_task(ref)
        elapsed, value = self._run(dag, ref)
        assert value == n
        return elapsed


def one_round(framework: PlainDask | Provtask, sizes: dict[str, int], slots: int) -> dict:
    figures = {"no-op tasks/s": sizes["noop"] / framework.map(noop, sizes["noop"])[0]}
    for label, seconds in (("10 ms", 0.01), ("1 ms", 0.001), ("1 s", 1.0)):
        makespan, durations = framework.map(nap, sizes[label], seconds=seconds)
        figures[f"efficiency {label}"] = sum(durations) / (slots * makespan)
    figures["chain ms per hop"] = framework.chain(sizes["chain"]) / sizes["chain"] * 1000
    return figures


def run(args: argparse.Namespace) -> Figures:
    sizes = {"noop": 2000, "10 ms": 400, "1 ms": 2000, "1 s": 6, "chain": 1000}
    if args.quick:
        sizes = {"noop": 200, "10 ms": 40, "1 ms": 200, "1 s": 2, "chain": 100}
    figures: Figures = {}
    with local_client(args.workers) as client, tempfile.TemporaryDirectory() as tmp:
        frameworks = {
            "dask": lambda: PlainDask(client),
            "dask-batched": lambda: BatchedDask(client, args.workers),
            "provtask": lambda: Provtask(client, Path(tmp)),
        }
        framework = frameworks[args.framework]()
        framework.map(noop, 200)  # warm-up: imports, connections, caches
        framework.chain(20)
        for _ in range(rounds_of(args)):
            for name, value in one_round(framework, sizes, args.workers).items():
                figures.setdefault(name, []).append(value)
    return figures


def main() -> None:
    options = parser(__doc__, rounds=5)
    options.add_argument("--framework", choices=("dask", "dask-batched", "provtask"), required=True)
    options.add_argument("--workers", type=int, default=2)
    args = options.parse_args()
    figures = run(args)
    title = f"{args.framework}: {args.workers} workers x 1 thread, {rounds_of(args)} rounds"
    report(title, figures, UNITS, args.json)


if __name__ == "__main__":
    main()
