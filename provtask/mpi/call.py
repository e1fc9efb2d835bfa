"""What the engine ships to workers for a task: its function, or for an MPI task an
:class:`~provtask.mpi.attempt.MPICall` that launches it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..gpu_devices import GPUTask
from .attempt import MPICall
from .launch import launch_spec

if TYPE_CHECKING:
    from ..clusters.config import ClustersConfig
    from ..tasks import TaskDef


def worker_function(task: TaskDef, config: ClustersConfig | None) -> Callable:
    """The callable workers run for ``task`` (``config``: None on the embedded default),
    wrapped in a :class:`~provtask.gpu_devices.GPUTask` when the task asks for GPUs."""
    function: Callable = task.fn
    if task.kind == "mpi":
        partition = None
        if config is not None:
            partition = config.partition_for(task.resources.partition, task.name)
        spec = launch_spec(task.resources, partition)
        function = MPICall(task.fn, spec, task.takes_comm, task.name)
    return GPUTask(function, task.resources.gpus) if task.resources.gpus else function
