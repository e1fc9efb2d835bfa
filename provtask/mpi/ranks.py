"""Where each rank ran: a tiny shell wrapper notes the rank's node, then becomes the program.

The wrapper ``exec``s the program, so the rank keeps its process and its MPI environment.
Nodes are told apart by ``SLURMD_NODENAME`` (fake SLURM nodes may share a host name), else
by the host name.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..gpu_devices import Binding

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


# $1: the attempt's device ids, $2: the variables to set (both comma lists); the rest: the
# program. The rank's number on its node comes from SLURM (srun), Open MPI, MPICH/Intel MPI
# (Hydra) or PMI; rank l gets device l modulo the number of ids.
_BIND = (
    'l="${SLURM_LOCALID:-${OMPI_COMM_WORLD_LOCAL_RANK:-'
    '${MPI_LOCALRANKID:-${PMI_LOCAL_RANK:-0}}}}"; '
    "set -f; IFS=,; n=0; for d in $1; do n=$((n+1)); done; k=$((l % n)); i=0; "
    'for d in $1; do [ "$i" -eq "$k" ] && dev="$d"; i=$((i+1)); done; '
    'for v in $2; do export "$v=$dev"; done; unset IFS; set +f; shift 2; exec "$@"'
)


def binding_devices(binding: Binding, program: list[str]) -> list[str]:
    """``program`` wrapped so that each rank sees one device of ``binding``: local rank l
    gets ``binding.ids[l % len(ids)]`` in every variable of ``binding.variables``."""
    ids, variables = ",".join(binding.ids), ",".join(binding.variables)
    return ["/bin/sh", "-c", _BIND, "provtask-gpu", ids, variables, *program]
