"""A sweep whose elements print, and where the element with seed 2 raises."""

from provtask import DAG, task


@task
def make_grid(n: int) -> list[dict]:
    return [{"T": 300 + 10 * i, "seed": i} for i in range(n)]


@task
def simulate(params: dict) -> float:
    print(f"simulating T={params['T']}")
    if params["seed"] == 2:
        import sys

        print("energy diverged", file=sys.stderr)
        raise FloatingPointError(f"diverged at T={params['T']}")
    return params["T"] / 100


@task
def summarise(values: list[float]) -> float:
    return sum(values)


with DAG("noisy_sweep", params={"n": 4}) as dag:
    summarise(simulate.map(make_grid(dag.param("n"))))
