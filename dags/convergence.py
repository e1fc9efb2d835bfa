"""A static parameter scan with a check step: fan-out known when the DAG is built.

    provtask run dags/convergence.py --param tolerance=1e-4

One ``integrate`` task per grid size (a list comprehension: the grid is fixed), a
``check_inputs`` task that must succeed before any of them starts (``>>``: order only, no
data), and ``converged`` which finds the first grid size within tolerance of the finest.
"""

import math

from provtask import DAG, task

GRID_SIZES = [8, 16, 32, 64, 128, 256, 512]


@task
def check_inputs(sizes: list[int]) -> None:
    if any(n < 2 for n in sizes):
        raise ValueError(f"every grid needs at least 2 points, got {sizes}")


@task(retries=2)
def integrate(points: int) -> dict:
    """Trapezoid rule for the integral of sin on [0, pi] (exact value: 2)."""
    h = math.pi / (points - 1)
    values = [math.sin(i * h) for i in range(points)]
    return {"points": points, "value": h * (sum(values) - (values[0] + values[-1]) / 2)}


@task
def converged(results: list[dict], tolerance: float) -> dict:
    finest = results[-1]["value"]
    for result in results:
        if abs(result["value"] - finest) < tolerance:
            return {"points": result["points"], "value": result["value"], "finest": finest}
    raise ValueError(f"no grid converged to within {tolerance}")


with DAG("convergence", params={"tolerance": 1e-3}) as dag:
    checked = check_inputs(GRID_SIZES)
    results = [integrate(n) for n in GRID_SIZES]
    checked >> results
    converged(results, dag.param("tolerance"))
