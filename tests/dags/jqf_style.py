"""A jobqueue_features-style script on provtask's compat decorators (two partitions)."""

from provtask.compat.jobqueue_features import on_cluster, task


@task()
def square(x: int) -> int:
    return x**2


@task(cluster_id="other")
def inc(x: int) -> int:
    return x + 1


@on_cluster()
def main(n: int) -> dict:
    squares = [square(i) for i in range(1, n + 1)]
    return {"squares": squares, "incremented": [inc(s) for s in squares]}
