"""One big no-op ``.map``: tasks/s and the driver's peak memory, warm cluster.

    python -m benchmarks.noop_100k --framework dask|dask-batched|provtask
                                   [--tasks 100000] [--workers 2] [--rounds 1] [--json]

One process per framework (so its peak RSS is its own), one ``LocalCluster`` started and
warmed up before the clock starts. Each round runs ``--tasks`` no-op tasks: provtask as a
``.map`` DAG run into a fresh store (full provenance, every task a cache miss, the time
until every row is committed); ``dask`` as one ``client.map``; ``dask-batched`` as plain
distributed running provtask's batches (provenance off, see ``benchmarks.engine``).

Figures: tasks/s; the driver's peak RSS (MB, the process holding the client and, with a
``LocalCluster``, the scheduler); kB per task of that peak above the RSS before the first
round; for provtask, the writer process's peak RSS (MB).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from provtask import DAG

from .common import Figures, local_client, parser, peak_rss_mb, report, rounds_of
from .engine import BatchedDask, PlainDask, noop, noop_task


def writer_peak_mb() -> float:
    """The peak RSS of this process's store writer process, MB (0 if there is none)."""
    try:
        from provtask.store.writer_channel import writer_pid
    except ImportError:  # provtask before the writer process: its writer is a thread
        return 0.0
    pid = writer_pid()
    if pid is None:
        return 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def provtask_run(client, n: int, folder: Path) -> float:
    with DAG("noop-100k") as dag:
        noop_task.map(list(range(n)))
    start = time.perf_counter()
    result = dag.run(client=client, store=folder)
    elapsed = time.perf_counter() - start
    assert result.ok, result.errors
    return elapsed


def main() -> None:
    options = parser(__doc__, rounds=1)
    options.add_argument("--framework", choices=("dask", "dask-batched", "provtask"), required=True)
    options.add_argument("--tasks", type=int, default=100_000)
    options.add_argument("--workers", type=int, default=2)
    args = options.parse_args()
    n = 10_000 if args.quick else args.tasks
    figures: Figures = {"tasks/s": [], "driver peak RSS MB": [], "kB per task": []}
    with local_client(args.workers) as client, tempfile.TemporaryDirectory() as tmp:
        plain = {"dask": PlainDask, "dask-batched": lambda c: BatchedDask(c, args.workers)}
        for warm_up in range(2):  # imports, connections, the writer process, caches
            if args.framework == "provtask":
                provtask_run(client, 2000, Path(tmp) / f"warm-up-{warm_up}")
            else:
                plain[args.framework](client).map(noop, 2000)
        base = peak_rss_mb()
        for round_no in range(rounds_of(args)):
            if args.framework == "provtask":
                elapsed = provtask_run(client, n, Path(tmp) / f"store-{round_no}")
            else:
                elapsed = plain[args.framework](client).map(noop, n)[0]
            figures["tasks/s"].append(n / elapsed)
            figures["driver peak RSS MB"].append(peak_rss_mb())
            figures["kB per task"].append((peak_rss_mb() - base) * 1024 / n)
        if args.framework == "provtask":
            figures["writer process peak RSS MB"] = [writer_peak_mb()]
    title = f"{n} no-op tasks, {args.framework}, {args.workers} workers x 1 thread"
    report(title, figures, {"tasks/s": "tasks/s"}, args.json)


if __name__ == "__main__":
    main()
