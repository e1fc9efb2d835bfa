"""Making pools: the embedded default, a caller's client, or a configured partition's cluster."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from ..mpi.shape import job_partition
from .pool import Pool

if TYPE_CHECKING:
    from ..tasks import TaskDef
    from .config import PartitionConfig


def client_pool(client: Any) -> Pool:
    """A caller's ``distributed.Client``: every task goes there; the caller closes it."""
    return Pool("client", client)


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
            preload=["provtask.clusters.quiet_worker"],  # Ctrl-C is the driver's to handle
        )
    return Pool("local", Client(cluster, set_as_default=False), cluster)


def task_pool(partition: PartitionConfig, task: TaskDef, label: str) -> Pool:
    """The pool ``label`` of a partition for ``task``: a label other than the partition's
    name is for MPI tasks: batch jobs sized for one MPI task of a shape, or the partition's
    packed MPI jobs (``mpi-packing``)."""
    if label != partition.name:
        partition = job_partition(partition, task.resources)
    return partition_pool(partition, label)


def partition_pool(partition: PartitionConfig, label: str | None = None) -> Pool:
    """The pool of a configured partition: a batch-job cluster, or a local one. ``label``
    (default: the partition's name) names its jobs in the store, e.g. ``cpu-0``."""
    import dask
    from distributed import Client

    from .batch_pools import BatchPool, JobWatch, import_dask_jobqueue
    from .jobqueue import job_class, make_cluster
    from .packed import PackedPool

    import_dask_jobqueue()
    # A lost worker fails its task at once so the engine records it and retries (see local_pool).
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        if partition.scheduler == "local":
            cluster = make_cluster(partition)
            return Pool(partition.name, Client(cluster, set_as_default=False), cluster, partition)
        watch = JobWatch(label or partition.name)
        cluster = make_cluster(partition, job_cls=watch.job_class(job_class(partition)))
    pool_class = PackedPool if partition.packed_job else BatchPool
    return pool_class(partition, Client(cluster, set_as_default=False), cluster, watch)
