"""MPI shapes: batch jobs that allocate what MPI tasks need.

By default an MPI task on a batch partition runs in a job of its own shape (nodes, ranks
per node, cpus per rank), whose single worker of one thread launches one MPI task at a time
inside the job's allocation; each distinct shape of a partition is a pool of its own. A
partition with ``mpi-packing`` instead has one pool of *packed* jobs of ``nodes-per-job``
nodes for every shape: each job's worker runs several MPI tasks at once, each on its own
nodes of the allocation (see :mod:`provtask.mpi.allocation`).
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
PACKED_SUFFIX = "-packed"


def pool_label(partition: PartitionConfig, task: TaskDef) -> str:
    """The pool a task runs in: its partition's; for an MPI task on a batch partition its
    shape's, e.g. ``cpu-mpi-2x4x1`` (nodes x ranks per node x cpus per rank), or with
    ``mpi-packing`` the partition's packed jobs, e.g. ``cpu-packed``."""
    if task.kind != "mpi" or partition.scheduler == "local":
        return partition.name
    if partition.mpi_packing:
        return partition.name + PACKED_SUFFIX
    res = task.resources
    return f"{partition.name}-mpi-{res.nodes}x{res.ntasks_per_node}x{res.cpus_per_task}"


def job_partition(partition: PartitionConfig, resources: Resources) -> PartitionConfig:
    """The settings of the batch jobs an MPI task of these resources runs in."""
    if partition.mpi_packing:
        return packed_partition(partition)
    return shaped_partition(partition, resources)


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


def packed_partition(partition: PartitionConfig) -> PartitionConfig:
    """The partition's settings for its packed MPI jobs: ``nodes-per-job`` whole nodes
    (``cores`` CPUs each) and one worker with a thread and an ``MPI_NODES`` per node, so it
    runs as many MPI tasks at once as their nodes fit in the allocation."""
    nodes = partition.mpi_packing
    assert nodes is not None
    return dataclasses.replace(
        partition,
        cores=nodes,  # worker threads: at most one MPI task per node at once
        processes=1,
        job_cpu=1,
        min_jobs=0,
        packed_job=True,
        job_directives_skip=(*partition.job_directives_skip, _ONE_TASK),
        job_extra_directives=(
            *partition.job_extra_directives,
            f"--nodes={nodes}",
            f"--ntasks-per-node={partition.cores}",
        ),
    )
