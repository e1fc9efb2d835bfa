"""What can be known about an MPI task before a run starts."""

from __future__ import annotations

import importlib.util
import shutil
from typing import TYPE_CHECKING

from ..errors import MPIError, ResourceError
from .launch import launch_spec

if TYPE_CHECKING:
    from ..clusters.config import PartitionConfig
    from ..tasks import TaskDef


def check_mpi_task(node_id: str, task: TaskDef, partition: PartitionConfig | None) -> None:
    """Refuse an MPI task that cannot run where it is sent (``partition`` None: embedded)."""
    spec = launch_spec(task.resources, partition)
    if not spec.local:
        assert partition is not None
        if partition.scheduler != "slurm":
            raise ResourceError(
                f"task {node_id!r} is an @mpi_task on partition {partition.name!r} "
                f"(scheduler {partition.scheduler}); this version sizes MPI batch jobs for "
                "SLURM only: use a slurm or local partition"
            )
        per_node = task.resources.ntasks_per_node * task.resources.cpus_per_task
        if per_node > partition.cores:
            raise ResourceError(
                f"task {node_id!r} asks for {task.resources.ntasks_per_node} ranks per node x "
                f"{task.resources.cpus_per_task} cpus_per_task = {per_node} cores per node, but "
                f"a job of partition {partition.name!r} has cores {partition.cores}; ask for "
                "fewer ranks per node (and more nodes), or raise cores of the partition"
            )
        packing = partition.mpi_packing
        if packing is not None and task.resources.nodes > packing:
            where = f" (in {partition.source})" if partition.source else ""
            raise ResourceError(
                f"task {node_id!r} asks for nodes={task.resources.nodes}, but partition "
                f"{partition.name!r} packs MPI tasks into jobs of mpi-packing: "
                f"{{nodes-per-job: {packing}}}{where}; ask for at most {packing} nodes, or "
                f"raise nodes-per-job to {task.resources.nodes} or more"
            )
        if packing is not None and task.resources.gpus:
            raise ResourceError(
                f"task {node_id!r} asks for gpus={task.resources.gpus}, but partition "
                f"{partition.name!r} packs MPI tasks (mpi-packing), and packed jobs do not "
                "place GPUs yet; run GPU MPI tasks on a partition without mpi-packing"
            )
        return
    if shutil.which(spec.launcher) is None:
        raise MPIError(
            f"task {node_id!r} is an @mpi_task: with no batch system it runs through "
            f"{spec.launcher}, which is not installed here; install an MPI library (e.g. "
            "'apt install openmpi-bin') or run on a partition of a clusters file"
        )
    if task.takes_comm and importlib.util.find_spec("mpi4py") is None:
        raise MPIError(
            f"task {node_id!r} runs its function on every rank with mpi4py, which is not "
            "installed: pip install mpi4py"
        )
