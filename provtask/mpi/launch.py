"""How an MPI task is launched: the launcher, its command line and the ranks' environment.

Three launchers: ``srun --mpi=pmix`` (SLURM's own), ``mpirun`` (Open MPI) and ``mpiexec``
(MPICH and Intel MPI, Hydra options). Inside a batch job the launcher fills the job's
allocation; on the embedded default (no batch system) ``mpirun`` runs every rank on this
machine, oversubscribing its cores if needed. In a packed job (``mpi-packing``) the launch
names the nodes it takes out of the allocation (``hosts``): ``srun --exclusive --nodelist``,
``mpirun --host`` or ``mpiexec -hosts``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..resources import Resources

if TYPE_CHECKING:
    from ..clusters.config import PartitionConfig

LOCAL_LAUNCHER = "mpirun"
ROOT_VARIABLES = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


@dataclass(frozen=True)
class LaunchSpec:
    """Everything needed to build an MPI task's launch line (hashable: part of the worker's
    function table)."""

    launcher: str
    nodes: int = 1
    ntasks_per_node: int = 1
    cpus_per_task: int = 1
    walltime: int | None = None  # seconds; past it every rank is killed
    local: bool = False  # all ranks on this machine, oversubscribing its cores
    packed: bool = False  # in a packed job: launched on nodes taken from the allocation
    extra_args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()

    @property
    def ranks(self) -> int:
        return self.nodes * self.ntasks_per_node


def launch_spec(resources: Resources, partition: PartitionConfig | None) -> LaunchSpec:
    """The launch of a task on a partition (``None``: the embedded default).

    Launcher: on a batch partition the task's, else the partition's ``launcher``, else
    ``srun`` for SLURM and ``mpirun`` for others; with no batch system, the partition's
    ``launcher`` or ``mpirun`` (a task's ``launcher`` names its cluster's launcher, so the
    same DAG still runs on a laptop).
    """
    local = partition is None or partition.scheduler == "local"
    if local:
        launcher = (partition and partition.launcher) or LOCAL_LAUNCHER
    else:
        assert partition is not None
        default = "srun" if partition.scheduler == "slurm" else "mpirun"
        launcher = resources.launcher or partition.launcher or default
    return LaunchSpec(
        launcher=launcher,
        nodes=resources.nodes,
        ntasks_per_node=resources.ntasks_per_node,
        cpus_per_task=resources.cpus_per_task,
        walltime=resources.walltime,
        local=local,
        packed=not local and partition is not None and partition.mpi_packing is not None,
        extra_args=partition.launcher_args if partition else (),
        env=partition.mpi_env if partition else (),
    )


def launch_line(
    spec: LaunchSpec,
    program: list[str],
    command_env: dict[str, str] | None = None,
    hosts: list[str] | None = None,
) -> list[str]:
    """The command that starts ``program`` on every rank (``command_env``: the variables an
    :class:`MPICommand` adds, forwarded by name where the launcher needs it; ``hosts``: the
    nodes of a packed job's allocation the ranks run on)."""
    if spec.launcher == "srun":
        line = ["srun", "--mpi=pmix"]
        if hosts:  # a job step on these nodes only, sharing no CPU with other steps
            line += ["--exclusive", f"--nodelist={','.join(hosts)}"]
        line += [
            f"--nodes={spec.nodes}",
            f"--ntasks={spec.ranks}",
            f"--ntasks-per-node={spec.ntasks_per_node}",
            f"--cpus-per-task={spec.cpus_per_task}",
            "--kill-on-bad-exit=1",
        ]
    elif spec.launcher == "mpirun":
        line = ["mpirun", "-np", str(spec.ranks)]
        if hosts:
            line += ["--host", ",".join(f"{host}:{spec.ntasks_per_node}" for host in hosts)]
        if spec.local:
            line += ["--oversubscribe", "--bind-to", "none"]
        else:
            mapping = f"ppr:{spec.ntasks_per_node}:node"
            if spec.cpus_per_task > 1:
                mapping += f":pe={spec.cpus_per_task}"
            line += ["--map-by", mapping]
        # Open MPI passes to remote ranks only the variables -x names.
        for name in sorted(launch_variables(spec, command_env)):
            line += ["-x", name]
    elif spec.launcher == "mpiexec":
        line = ["mpiexec", "-n", str(spec.ranks), "-ppn", str(spec.ntasks_per_node)]
        if hosts:
            line += ["-hosts", ",".join(hosts)]
    else:
        raise ValueError(f"unknown launcher {spec.launcher!r}")
    return [*line, *spec.extra_args, *program]


def launch_variables(spec: LaunchSpec, command_env: dict[str, str] | None = None) -> dict[str, str]:
    """Variables the ranks get on top of the worker's environment."""
    variables = {"OMP_NUM_THREADS": str(spec.cpus_per_task), **dict(spec.env)}
    if command_env:
        variables.update(command_env)
    return variables


def launch_env(spec: LaunchSpec, command_env: dict[str, str] | None = None) -> dict[str, str]:
    """The launcher's full environment (Open MPI's mpirun refuses root without two variables,
    set only when running as root)."""
    env = {**os.environ, **launch_variables(spec, command_env)}
    if spec.launcher == "mpirun" and os.geteuid() == 0:
        env.update(ROOT_VARIABLES)
    return env
