"""Where tasks run: a pool is one Dask cluster and its client.

Today every task goes to one pool: the embedded ``LocalCluster`` or a client the caller
passes. ``Pools.pool_for`` is the routing point where one pool per partition plugs in.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from ..tasks import TaskDef


@dataclass
class Pool:
    """One Dask cluster reached through one client."""

    name: str
    client: Any  # distributed.Client
    cluster: Any = None  # owned cluster, closed with the pool; None when the caller owns it

    def describe(self) -> str:
        info = self.client.scheduler_info(n_workers=-1) if self.client.status == "running" else {}
        workers = info.get("workers", {})
        threads = sum(w.get("nthreads", 0) for w in workers.values())
        kind = type(self.cluster).__name__ if self.cluster is not None else "Client"
        return f"{self.name}: {kind}({len(workers)} workers, {threads} threads)"

    def close(self) -> None:
        if self.cluster is not None:
            self.client.close()
            self.cluster.close()


def local_pool(n_workers: int | None = None) -> Pool:
    """The embedded default: one single-threaded worker process per core."""
    import dask
    from distributed import Client, LocalCluster

    # A worker that dies fails its task at once, so the engine records the lost attempt and
    # applies the task's own retries (Dask would otherwise rerun it silently).
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(
            n_workers=n_workers or os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # any free port: runs side by side never clash
            silence_logs=logging.ERROR,
        )
    return Pool("local", Client(cluster, set_as_default=False), cluster)


class Pools:
    """The pools of a run and the routing of tasks to them."""

    def __init__(self, default: Pool) -> None:
        self.default = default

    def pool_for(self, task: TaskDef) -> Pool:
        return self.default

    def all(self) -> list[Pool]:
        return [self.default]

    def close(self) -> None:
        for pool in self.all():
            pool.close()
