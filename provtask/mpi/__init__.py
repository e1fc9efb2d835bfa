"""MPI tasks: launching an executable or an mpi4py function on every rank (docs/mpi.md)."""

from .command import MPICommand, MPIRun

__all__ = ["MPICommand", "MPIRun"]
