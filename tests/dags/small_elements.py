"""Many small map elements (batched by the engine), an element-wise map and a whole-map sum."""

from distributed import get_worker

from provtask import DAG, task


@task
def numbers(n: int) -> list[int]:
    return list(range(n))


@task
def square(x: int, bad: int) -> dict:
    if x == bad:
        raise ValueError(f"{x} is bad")
    return {"x": x, "square": x * x, "dask_key": get_worker().get_current_task()}


@task
def halve(item: dict) -> float:
    return item["square"] / 2


@task
def total(values: list[float]) -> float:
    return sum(values)


with DAG("small_elements", params={"n": 300, "bad": -1}) as dag:
    squares = square.map(numbers(dag.param("n")), bad=dag.param("bad"))
    total(halve.map(squares))
