"""Where each rank ran: a tiny shell wrapper notes the rank's node, then becomes the program.

The wrapper ``exec``s the program, so the rank keeps its process and its MPI environment.
Nodes are told apart by ``SLURMD_NODENAME`` (fake SLURM nodes may share a host name), else
by the host name.
"""

from __future__ import annotations

from pathlib import Path

# $1: the folder for the notes; the rest: the program. The rank number comes from PMIx
# (Open MPI, srun --mpi=pmix), PMI (MPICH, Intel MPI), Open MPI or SLURM.
_NOTE = (
    'r="${PMIX_RANK:-${PMI_RANK:-${OMPI_COMM_WORLD_RANK:-${SLURM_PROCID:-x$$}}}}"; '
    'printf "%s\\n" "${SLURMD_NODENAME:-$(uname -n)}" > "$1/rank-$r"; '
    'shift; exec "$@"'
)


def noting_node(folder: Path, program: list[str]) -> list[str]:
    """``program`` wrapped so that each rank writes its node to ``folder/rank-<rank>``."""
    return ["/bin/sh", "-c", _NOTE, "provtask-rank", str(folder), *program]


def nodes_by_rank(folder: Path) -> list[str]:
    """The node of each rank that started, in rank order."""
    notes = []
    for path in folder.glob("rank-*"):
        rank = path.name.removeprefix("rank-")
        key = int(rank) if rank.isdigit() else 1 << 30
        notes.append((key, path.read_text().strip()))
    return [node for _, node in sorted(notes)]
