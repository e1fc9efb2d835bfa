"""Two partitions in one DAG: inputs and the summary on CPU nodes, scoring on GPU nodes.

    provtask run dags/two_partitions.py --clusters dags/two_partitions.yaml --param n=6

``prepare`` and ``summarise`` run on the ``cpu`` partition (the default); each ``score``
asks for one GPU on the ``gpu`` partition, so it only runs on a worker holding a free GPU
slot. Values move between the partitions' clusters on their own. Without a clusters file
the same DAG runs on the embedded local cluster (partitions and GPUs are then ignored).
"""

import os
import random

from provtask import DAG, task


@task(walltime="00:05:00")
def prepare(n: int, seed: int) -> list[list[float]]:
    """n random 3-D "structures" of 8 atoms each."""
    rng = random.Random(seed)
    return [[rng.uniform(-1.0, 1.0) for _ in range(24)] for _ in range(n)]


@task(partition="gpu", gpus=1, walltime="00:05:00", retries=1)
def score(coordinates: list[float]) -> dict:
    """A stand-in for a GPU model: a pair energy, with the GPU and node it ran on."""
    atoms = [coordinates[i : i + 3] for i in range(0, len(coordinates), 3)]
    energy = 0.0
    for i, a in enumerate(atoms):
        for b in atoms[i + 1 :]:
            r2 = sum((p - q) ** 2 for p, q in zip(a, b, strict=True)) + 0.1
            energy += 1.0 / r2**6 - 1.0 / r2**3
    return {
        "energy": energy,
        "gpu": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "node": os.environ.get("SLURMD_NODENAME"),
    }


@task
def summarise(scores: list[dict]) -> dict:
    energies = sorted(s["energy"] for s in scores)
    return {"structures": len(scores), "lowest": energies[0], "highest": energies[-1]}


with DAG("two_partitions", params={"n": 4, "seed": 1}) as dag:
    structures = prepare(dag.param("n"), dag.param("seed"))
    summarise(score.map(structures))
