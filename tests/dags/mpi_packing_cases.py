"""MPI tasks for tests/test_mpi_packing.py: several MPI tasks in one packed batch job.

``meet`` proves two tasks ran at the same time without timing anything: its rank 0 leaves a
file and waits for its partner's (it fails if the partner never comes), so both succeed only
if they ran concurrently.
"""

import os

from provtask import DAG, mpi_task
from provtask.mpi import MPICommand

RENDEZVOUS_TIMEOUT = 180  # s a task waits for its partner


@mpi_task(partition="mpi", nodes=2, ntasks_per_node=1)
def meet(name: str, partner: str, folder: str) -> MPICommand:
    script = (
        'if [ "$SLURM_PROCID" = 0 ]; then touch "$1/$2"; i=0; '
        'while [ ! -e "$1/$3" ]; do i=$((i+1)); [ $i -gt $4 ] && exit 7; sleep 0.5; done; fi; '
        'printf "%s\\n" "$SLURMD_NODENAME"'
    )
    args = ["-c", script, "meet", folder, name, partner, str(RENDEZVOUS_TIMEOUT * 2)]
    return MPICommand("sh", args)


@mpi_task(partition="mpi", nodes=2, ntasks_per_node=1, launcher="mpirun")
def gather_nodes(comm, first: object, second: object) -> list[str]:
    """Runs after both meetings (it takes their outputs), through mpirun --host."""
    return comm.gather(os.environ.get("SLURMD_NODENAME"))


with DAG("packed", params={"folder": "."}) as packed:
    left = meet("left", "right", packed.param("folder"))
    right = meet("right", "left", packed.param("folder"))
    gather_nodes(left, right)


@mpi_task(partition="mpi", nodes=3)
def too_wide() -> MPICommand:
    return MPICommand("true")


with DAG("too_wide") as too_wide_dag:
    too_wide()
