"""Many tiny tasks, for tests of the store under load."""

from provtask import DAG, task


@task
def make_items(n: int) -> list[int]:
    return list(range(n))


@task
def noop(x: int) -> int:
    return x


@task
def total(values: list[int]) -> int:
    return sum(values)


with DAG("many_noops", params={"n": 2000}) as dag:
    total(noop.map(make_items(dag.param("n"))))
