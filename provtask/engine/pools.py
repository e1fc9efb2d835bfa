"""Where tasks run: a pool is one Dask cluster and its client; a run has one per partition.

With no clusters file every task goes to one pool (the embedded ``LocalCluster``, or a client
the caller passes). With one, each partition a task names gets its own pool, created the
first time a task of that partition is ready (see :mod:`.batch` for batch-job pools), and so
does each MPI shape (nodes, ranks per node, cpus per rank) of a batch partition.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..mpi.shape import pool_label, shaped_partition
from ..tasks import TaskDef

if TYPE_CHECKING:
    from ..clusters.config import ClustersConfig, PartitionConfig


@dataclass
class JobEvent:
    """Something that happened to a batch job, for the store's ``jobs`` table."""

    name: str
    columns: dict[str, Any]


@dataclass
class Pool:
    """One Dask cluster reached through one client."""

    name: str
    client: Any  # distributed.Client
    cluster: Any = None  # owned cluster, closed with the pool; None when the caller owns it
    partition: PartitionConfig | None = None
    demand: float = 0.0  # batch jobs' worth of tasks submitted and not finished
    broken: str | None = None  # why no task can run here any more
    _resources: dict[int, dict[str, float] | None] = field(default_factory=dict)

    def describe(self) -> str:
        info = self.client.scheduler_info(n_workers=-1) if self.client.status == "running" else {}
        workers = info.get("workers", {})
        threads = sum(w.get("nthreads", 0) for w in workers.values())
        kind = type(self.cluster).__name__ if self.cluster is not None else "Client"
        return f"{self.name}: {kind}({len(workers)} workers, {threads} threads)"

    def task_resources(self, task: TaskDef) -> dict[str, float] | None:
        """Dask worker resources a task holds while it runs (only on configured partitions,
        whose workers declare them)."""
        key = id(task)
        if key not in self._resources:
            offered = self.partition.worker_resources() if self.partition else {}
            wanted = {"GPU": task.resources.gpus} if task.resources.gpus else {}
            self._resources[key] = {k: v for k, v in wanted.items() if k in offered} or None
        return self._resources[key]

    def job_share(self, task: TaskDef) -> float:
        """The fraction of one batch job a task occupies (what scaling adds up)."""
        if self.partition is None:
            return 0.0
        if task.kind == "mpi":
            return 1.0  # an MPI shape's job runs one MPI task at a time
        part, res = self.partition, task.resources
        shares = [res.cpus_per_task / part.cores]
        if res.gpus and part.gpus_per_node:
            shares.append(res.gpus / part.gpus_per_node)
        if res.memory and part.memory:
            shares.append(res.memory / part.memory)
        return max(shares)

    def tend(self, now: float) -> list[JobEvent]:
        """Periodic care: scaling and watching batch jobs (nothing to do for a fixed cluster)."""
        return []

    def release(self, now: float) -> list[JobEvent]:
        """The run is over (its batch jobs, if any, end when the pool closes)."""
        return []

    def job_summary(self) -> str:
        """The pool's batch jobs in a few words ("" without batch jobs)."""
        return ""

    def worker_connected(self, batch_job_id: str | None) -> float | None:
        """Note a worker's arrival; returns when its batch job was submitted, if known."""
        return None

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
            preload=["provtask.engine.quiet_worker"],  # Ctrl-C is the driver's to handle
        )
    return Pool("local", Client(cluster, set_as_default=False), cluster)


class Pools:
    """The pools of a run and the routing of tasks to them.

    ``on_new`` is called with each pool when it is created, before any task goes to it.
    """

    def __init__(
        self,
        default: Pool | None = None,
        config: ClustersConfig | None = None,
        on_new: Callable[[Pool], None] | None = None,
    ) -> None:
        if (default is None) == (config is None):
            raise ValueError("give either a default pool or a clusters config")
        self.config = config
        self.on_new = on_new
        self._by_name: dict[str, Pool] = {default.name: default} if default else {}
        self._by_task: dict[int, Pool] = {}

    def pool_for(self, task: TaskDef) -> Pool:
        pool = self._by_task.get(id(task))
        if pool is None:
            if self.config is None:
                pool = next(iter(self._by_name.values()))
            else:
                partition = self.config.partition_for(task.resources.partition, task.name)
                label = pool_label(partition, task)
                pool = self._by_name.get(label) or self._create(partition, task, label)
            self._by_task[id(task)] = pool
        return pool

    def _create(self, partition: PartitionConfig, task: TaskDef, label: str) -> Pool:
        from .batch import partition_pool

        if label != partition.name:  # an MPI shape: batch jobs sized for one MPI task
            partition = shaped_partition(partition, task.resources)
        pool = partition_pool(partition, label)
        self._by_name[label] = pool
        if self.on_new is not None:
            self.on_new(pool)
        return pool

    def attach(self, on_new: Callable[[Pool], None]) -> None:
        """Call ``on_new`` for the pools that exist and for those created later."""
        self.on_new = on_new
        for pool in self.all():
            on_new(pool)

    def all(self) -> list[Pool]:
        return list(self._by_name.values())

    def job_summary(self) -> str:
        """Batch jobs of every partition, for the progress bar."""
        return "; ".join(f"{p.name}: {s}" for p in self.all() if (s := p.job_summary()))

    def close(self) -> None:
        errors = []
        # Closing an in-process scheduler logs each step at INFO: not news to the user.
        logger = logging.getLogger("distributed")
        level = logger.level
        logger.setLevel(max(level, logging.ERROR))
        try:
            for pool in self.all():
                try:
                    pool.close()
                except Exception as exc:  # close every pool: no batch job may be left behind
                    errors.append(exc)
        finally:
            logger.setLevel(level)
        if errors:
            raise errors[0]


def jobs_needed(demand: float, min_jobs: int, max_jobs: int) -> int:
    """How many batch jobs a pool should have for ``demand`` jobs' worth of tasks."""
    return max(min_jobs, min(max_jobs, math.ceil(demand - 1e-9)))
