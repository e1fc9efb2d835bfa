"""A labelled sweep whose seed-2 element fails, summarised from what succeeded."""

from provtask import DAG, task
from provtask.partial import Failed, succeeded


@task
def make_grid(n: int) -> list[dict]:
    return [{"T": 300 + 10 * i, "seed": i} for i in range(n)]


@task(label="T={T} seed={seed}")
def simulate(params: dict) -> float:
    if params["seed"] == 2:
        raise FloatingPointError(f"diverged at T={params['T']}")
    return params["T"] / 100


@task(allow_failed=True)
def summarise(values: list) -> dict:
    return {
        "mean": sum(succeeded(values)) / len(succeeded(values)),
        "failed": [v.task_id for v in values if isinstance(v, Failed)],
    }


with DAG("partial_sweep", params={"n": 4}) as dag:
    summarise(simulate.map(make_grid(dag.param("n"))))
