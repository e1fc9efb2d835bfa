"""A pool: one Dask cluster and its client, the unit a run routes tasks to.

Pools whose workers are batch jobs are in :mod:`.batch_pools`; :mod:`.factory` makes pools.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..tasks import TaskDef
    from .config import PartitionConfig


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
            wanted = {"GPU": _gpus_held(task, offered)} if task.resources.gpus else {}
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
            shares.append(_gpus_held(task, part.worker_resources()) / part.gpus_per_node)
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

    def job_end(self, batch_job_id: str | None, now: float) -> float | None:
        """When a worker's batch job reaches its walltime (None: not known, or no walltime)."""
        return None

    def close(self) -> None:
        if self.cluster is not None:
            self.client.close()
            self.cluster.close()


def jobs_needed(demand: float, min_jobs: int, max_jobs: int) -> int:
    """How many batch jobs a pool should have for ``demand`` jobs' worth of tasks."""
    return max(min_jobs, min(max_jobs, math.ceil(demand - 1e-9)))


def _gpus_held(task: TaskDef, offered: dict[str, float]) -> float:
    """The GPU slots a GPU task holds on its worker: an MPI task its ``gpus``; a Python task
    all of its worker process's GPUs, so that one Python GPU task at a time has the process's
    environment (see provtask.gpu_devices)."""
    if task.kind == "python":
        return max(task.resources.gpus, offered.get("GPU", 0))
    return task.resources.gpus
