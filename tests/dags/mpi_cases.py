"""MPI tasks for tests/test_mpi.py: each test picks a DAG by name."""

import os
import sys

from provtask import DAG, mpi_task
from provtask.mpi import MPICommand


@mpi_task(ntasks_per_node=2)
def rank_sum(comm, values: list[int]) -> tuple[int, int]:
    """Every rank returns (its rank, the total): only rank 0's pair is the result."""
    return comm.rank, comm.allreduce(sum(values[comm.rank :: comm.size]))


@mpi_task(ntasks_per_node=2)
def failing(code: int) -> MPICommand:
    return MPICommand("sh", ["-c", f"echo 'bad input on line 3' >&2; exit {code}"])


@mpi_task(ntasks_per_node=2, walltime="3s")
def hanging(token: str) -> MPICommand:
    return MPICommand("sh", ["-c", "sleep 600", token])


@mpi_task(ntasks_per_node=2)
def chatty(megabytes: int) -> MPICommand:
    line = "x" * 1023
    script = f"for _ in range({megabytes} * 1024): print('{line}')\nprint('END')"
    return MPICommand(sys.executable, ["-c", script])


@mpi_task(ntasks_per_node=2)
def missing() -> MPICommand:
    return MPICommand("no-such-mpi-program", ["-in", "x"])


@mpi_task(ntasks_per_node=2)
def raising(comm) -> int:
    if comm.rank == 1:
        raise ValueError("rank 1 cannot go on")
    comm.barrier()  # rank 0 would wait here forever if rank 1's failure did not abort it
    return 0


with DAG("local_cases", params={"token": "unset"}) as local_cases:
    rank_sum([1, 2, 3, 4, 5])
    failing(3)
    hanging(local_cases.param("token"))
    chatty(3)
    missing()
    raising()


@mpi_task(partition="cpu", nodes=2, ntasks_per_node=1, launcher="srun")
def nodes_by_srun() -> MPICommand:
    return MPICommand("printenv", ["SLURMD_NODENAME"])


@mpi_task(partition="cpu", nodes=2, ntasks_per_node=1, launcher="mpirun")
def nodes_by_mpirun(comm) -> list[str]:
    return comm.gather(os.environ.get("SLURMD_NODENAME"))


with DAG("two_nodes") as two_nodes:
    nodes_by_srun()
    nodes_by_mpirun()
