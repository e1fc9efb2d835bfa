"""The nodes of a packed MPI job, and which of them each running MPI task holds.

A packed job's worker offers one Dask resource ``MPI_NODES`` per node of its allocation, so
Dask starts an MPI task of k nodes only when k are free. The worker process keeps one
:class:`NodeLedger` of the allocation's nodes: an attempt takes k named nodes for its launch
line (``srun --exclusive --nodelist=...``) and gives them back when its launcher has ended,
however the attempt ends (success, failure, walltime kill, or the attempt being stopped).
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import MPIError

_SCONTROL_TIMEOUT = 30.0


class NodeLedger:
    """Which nodes of an allocation are free; thread-safe (a worker's threads share it)."""

    def __init__(self, nodes: list[str]) -> None:
        self.nodes = list(nodes)
        self._free = list(nodes)
        self._changed = threading.Condition()

    @contextmanager
    def hold(self, count: int, task: str) -> Iterator[list[str]]:
        """``count`` free nodes (the first free ones, in allocation order) for the duration
        of the block; waits while fewer are free."""
        if count > len(self.nodes):
            raise MPIError(
                f"MPI task {task!r} asks for {count} nodes but its packed job has "
                f"{len(self.nodes)} ({','.join(self.nodes)}); raise nodes-per-job of "
                "mpi-packing or ask for fewer nodes"
            )
        with self._changed:
            self._changed.wait_for(lambda: len(self._free) >= count)
            taken, self._free = self._free[:count], self._free[count:]
        try:
            yield taken
        finally:
            with self._changed:
                self._free = [node for node in self.nodes if node in {*self._free, *taken}]
                self._changed.notify_all()

    def free(self) -> list[str]:
        with self._changed:
            return list(self._free)


_ledger: NodeLedger | None = None
_ledger_lock = threading.Lock()


def job_ledger(task: str) -> NodeLedger:
    """The ledger of the batch job this worker runs in (made once per worker process)."""
    global _ledger
    with _ledger_lock:
        if _ledger is None:
            _ledger = NodeLedger(allocation_nodes(task))
        return _ledger


def allocation_nodes(task: str) -> list[str]:
    """The node names of this SLURM job's allocation (``node[5-8]`` expanded by scontrol)."""
    compact = os.environ.get("SLURM_JOB_NODELIST") or os.environ.get("SLURM_NODELIST")
    if not compact:
        raise MPIError(
            f"MPI task {task!r} runs on a partition with mpi-packing, but its worker is not "
            "inside a SLURM job (no SLURM_JOB_NODELIST); packed MPI jobs need SLURM"
        )
    try:
        done = subprocess.run(
            ["scontrol", "show", "hostnames", compact],
            capture_output=True,
            text=True,
            timeout=_SCONTROL_TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MPIError(f"MPI task {task!r}: cannot expand node list {compact!r}: {exc}") from None
    nodes = done.stdout.split()
    if done.returncode != 0 or not nodes:
        raise MPIError(
            f"MPI task {task!r}: 'scontrol show hostnames {compact}' failed: {done.stderr.strip()}"
        )
    return nodes
