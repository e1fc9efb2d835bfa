"""An ensemble sweep: one toy "simulation" per temperature, then a summary.

    provtask run dags/ensemble.py --param n=16

``make_inputs`` builds the parameter sets at run time; ``simulate.map`` fans out over them
(one task per set); ``summarise`` gathers every result. Replace ``simulate``'s body with a
call to your MD code.
"""

import math
import random

from provtask import DAG, task


@task(memory="1GB", walltime="00:05:00")
def make_inputs(n: int) -> list[dict]:
    return [{"temperature": 300 + 10 * i, "seed": i} for i in range(n)]


@task(walltime="00:10:00", retries=1)
def simulate(params: dict) -> dict:
    """A stand-in for an MD run: a Metropolis walk whose mean energy depends on temperature."""
    rng = random.Random(params["seed"])
    beta = 1.0 / (0.0019872 * params["temperature"])  # kcal/mol
    x, energies = 0.0, []
    for _ in range(20_000):
        trial = x + rng.uniform(-0.5, 0.5)
        if rng.random() < math.exp(-beta * (trial**2 - x**2)):
            x = trial
        energies.append(x**2)
    return {**params, "mean_energy": sum(energies) / len(energies)}


@task
def summarise(results: list[dict]) -> dict:
    energies = {r["temperature"]: round(r["mean_energy"], 4) for r in results}
    return {"runs": len(results), "mean_energy_by_temperature": energies}


with DAG("ensemble", params={"n": 8}) as dag:
    inputs = make_inputs(dag.param("n"))
    runs = simulate.map(inputs)
    summarise(runs)
