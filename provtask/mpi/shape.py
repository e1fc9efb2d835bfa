"""MPI shapes: batch jobs that allocate exactly what one MPI task needs.

An MPI task on a batch partition runs in a job of its own shape (nodes, ranks per node,
cpus per rank), whose single worker of one thread launches one MPI task at a time inside
the job's allocation. Each distinct shape of a partition is a pool of its own.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from ..resources import Resources

if TYPE_CHECKING:
    from ..clusters.config import PartitionConfig
    from ..tasks import TaskDef

# dask-jobqueue always writes "#SBATCH -n 1"; a shape says --ntasks itself.
_ONE_TASK = "-n 1"


def pool_label(partition: PartitionConfig, task: TaskDef) -> str:
    """The pool a task runs in: its partition's, or for an MPI task on a batch partition its
    shape's, e.g. ``cpu-mpi-2x4x1`` (nodes x ranks per node x cpus per rank)."""
    if task.kind != "mpi" or partition.scheduler == "local":
        return partition.name
    res = task.resources
    return f"{partition.name}-mpi-{res.nodes}x{res.ntasks_per_node}x{res.cpus_per_task}"


def shaped_partition(partition: PartitionConfig, resources: Resources) -> PartitionConfig:
    """The partition's settings for jobs of one MPI shape (SLURM directives)."""
    return dataclasses.replace(
        partition,
        cores=1,  # one worker thread: one MPI task at a time per job
        processes=1,
        job_cpu=resources.cpus_per_task,
        min_jobs=0,
        job_directives_skip=(*partition.job_directives_skip, _ONE_TASK),
        job_extra_directives=(
            *partition.job_extra_directives,
            f"--nodes={resources.nodes}",
            f"--ntasks={resources.ranks}",
            f"--ntasks-per-node={resources.ntasks_per_node}",
        ),
    )
