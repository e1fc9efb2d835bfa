"""E-CAM jobqueue_features' decorators on provtask: the same names and meanings.

jobqueue_features submitted each decorated call to the Dask cluster named by ``cluster_id``
and returned a future. Here ``cluster_id`` names a *partition* of the clusters file
(``provtask clusters`` shows them), and the function decorated with :class:`on_cluster`
builds a DAG from the task calls it makes; the DAG runs, with provenance, when that
function returns, and its return value comes back with every task output filled in::

    from provtask.compat.jobqueue_features import on_cluster, task

    @task(cluster_id="gpu")
    def inc(x): return x + 1

    @on_cluster(cluster_id="gpu")
    def main():
        return [inc(i) for i in range(10)]     # not [inc(i).result() ...]

    print(main())                              # [1, 2, ..., 10]

Cluster objects (``CustomSLURMCluster(...)``) are not accepted: their settings go into the
clusters file, one partition per cluster id (docs/from-jobqueue-features.md).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from ..dag import DAG, Ref
from ..errors import ConfigError
from ..tasks import TaskDef
from ..tasks import mpi_task as _mpi_task
from ..tasks import task as _task
from ..templates import substitute


def task(cluster_id: str | None = None, **resources: Any) -> Callable[[Callable], TaskDef]:
    """``@task(cluster_id=...)``: a task of that partition (the default one if None)."""
    return _task(partition=cluster_id, **resources)


def mpi_task(
    cluster_id: str | None = None, default_mpi_tasks: int = 1, **resources: Any
) -> Callable[[Callable], TaskDef]:
    """``@mpi_task(cluster_id=..., default_mpi_tasks=N)``: an MPI task of N ranks."""
    resources.setdefault("ntasks_per_node", default_mpi_tasks)
    return _mpi_task(partition=cluster_id, **resources)


class on_cluster:  # jobqueue_features' name
    """``@on_cluster(cluster_id=...)``: run the function's task calls as one provtask run.

    ``store`` and ``clusters`` are passed to :func:`provtask.run` (defaults: ``./store`` or
    ``$PROVTASK_STORE``, and the clusters file search). ``scale`` is refused: a partition's
    number of jobs is its ``max-jobs`` in the clusters file.
    """

    def __init__(
        self,
        cluster_id: str | None = None,
        cluster: Any = None,
        scale: int | None = None,
        *,
        store: str | os.PathLike | None = None,
        clusters: str | os.PathLike | None = None,
    ) -> None:
        if cluster is not None:
            raise ConfigError(
                f"on_cluster(cluster=...): provtask creates clusters itself from the clusters "
                f"file; move the settings of {type(cluster).__name__} into a partition named "
                f"{cluster_id or 'as your default'!r} there (docs/from-jobqueue-features.md)"
            )
        if scale is not None:
            raise ConfigError(
                f"on_cluster(scale={scale}): set max-jobs of partition "
                f"{cluster_id or '(the default)'!r} in the clusters file instead; provtask "
                "scales each partition from its ready tasks"
            )
        self.cluster_id = cluster_id
        self.store = store
        self.clusters = clusters

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def run_as_dag(*args: Any, **kwargs: Any) -> Any:
            with DAG(fn.__name__) as dag:
                returned = fn(*args, **kwargs)
            result = dag.run(store=self.store, clusters=self.clusters).raise_for_status()
            return _fill_in(returned, result)

        return run_as_dag


def _fill_in(value: Any, result: Any) -> Any:
    """``value`` with each task reference replaced by that task's output."""
    return substitute(value, lambda ref, _: result[ref.node_id], lambda v: isinstance(v, Ref))
