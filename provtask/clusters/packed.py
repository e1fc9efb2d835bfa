"""Packed MPI jobs: one pool of ``nodes-per-job``-node batch jobs for a partition's MPI tasks.

With ``mpi-packing`` every MPI task of a partition, whatever its shape, goes to this pool.
Each job runs one Dask worker (on the job's first node) that offers ``MPI_NODES`` = the
job's nodes; a task of k nodes holds k of them while it runs, so the worker runs as many
MPI tasks at once as fit, each launched on its own nodes (:mod:`provtask.mpi.allocation`).
The pool scales by nodes: demand is the nodes of the tasks in flight over nodes-per-job,
and ``max-jobs`` bounds the jobs of all shapes together.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .batch_pools import BatchPool
from .config import MPI_NODES

if TYPE_CHECKING:
    from ..tasks import TaskDef


class PackedPool(BatchPool):
    """A partition's packed MPI jobs (settings: :func:`provtask.mpi.shape.packed_partition`)."""

    def task_resources(self, task: TaskDef) -> dict[str, float] | None:
        """The task's nodes (``MPI_NODES``), with the GPUs it asks for, if any."""
        key = id(task)
        if key not in self._resources:
            gpus = super().task_resources(task) or {}
            self._resources[key] = {**gpus, MPI_NODES: task.resources.nodes}
        return self._resources[key]

    def job_share(self, task: TaskDef) -> float:
        """A task of k nodes fills k / nodes-per-job of a packed job."""
        assert self.partition is not None and self.partition.mpi_packing
        return task.resources.nodes / self.partition.mpi_packing
