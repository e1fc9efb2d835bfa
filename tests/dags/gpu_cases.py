"""GPU tasks for tests/test_gpus.py: each reports the devices it was given.

``meet`` proves two GPU tasks ran at once: each writes its marker in ``folder`` and waits
for the other's. ``after`` runs once both have ended. ``ranks`` is an MPI task whose ranks
print the device each one sees.
"""

import os
import time
from pathlib import Path

from provtask import DAG, mpi_task, task
from provtask.mpi import MPICommand

RENDEZVOUS_TIMEOUT = 180.0  # s; generous: the machine is shared


@task(partition="gpu", gpus=1, walltime="00:05:00")
def meet(me: str, other: str, folder: str) -> dict:
    """Wait until ``other`` has started too, then say which devices this task saw."""
    here = Path(folder)
    (here / me).write_text(os.environ.get("CUDA_VISIBLE_DEVICES", ""))
    deadline = time.monotonic() + RENDEZVOUS_TIMEOUT
    while not (here / other).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{other} never started while {me} ran")
        time.sleep(0.1)
    return {"devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid()}


@task(partition="gpu", gpus=1, walltime="00:05:00")
def after(first: dict, second: dict) -> dict:
    return {"devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid()}


@mpi_task(partition="gpu", nodes=1, ntasks_per_node=2, gpus=2, walltime="00:05:00")
def ranks() -> MPICommand:
    script = 'echo "rank ${SLURM_PROCID} sees ${CUDA_VISIBLE_DEVICES}"'
    return MPICommand("/bin/sh", ["-c", script])


with DAG("gpu_meeting", params={"folder": "."}) as meeting:
    folder = meeting.param("folder")
    a = meet("a", "b", folder)
    b = meet("b", "a", folder)
    after(a, b)

with DAG("gpu_ranks") as per_rank:
    ranks()


@task(partition="gpu", gpus=1, walltime="00:05:00")
def hold(seconds: float) -> dict:
    """Hold a device for a while; say which one."""
    time.sleep(seconds)
    return {"devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid()}


with DAG("gpu_pair") as pair:
    hold(1.0)
    hold(1.5)
