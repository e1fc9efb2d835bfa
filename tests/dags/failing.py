"""A DAG where one task raises: its downstream is upstream_failed, the rest succeeds."""

from provtask import DAG, task


@task
def double(x: int) -> int:
    return 2 * x


@task
def boom(x: int) -> int:
    raise ValueError(f"bad input {x}")


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def independent() -> str:
    return "fine"


with DAG("failing") as dag:
    doubled = double(1)
    exploded = boom(doubled)
    after = add(doubled, exploded)
    add(after, 1)
    independent()
