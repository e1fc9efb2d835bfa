"""Element labels and partial results: which input failed, and a summary of the rest."""

from __future__ import annotations

import pandas as pd
import pytest

from provtask import DAG, NotFoundError, ResourceError, Store, TaskState, task
from provtask.partial import Failed, succeeded


def test_elements_are_labelled_by_their_item_or_template_everywhere(client, store_dir, load_dag):
    result = load_dag("partial_sweep").run(client=client, store=store_dir)
    tasks = Store(store_dir).tasks(result.run_id).set_index("task_id")
    assert tasks.loc["simulate[2]", "label"] == "T=320 seed=2"  # the template, filled in
    assert tasks.loc["simulate[2]", "state"] == "failed"
    assert pd.isna(tasks.loc["make_grid", "label"])  # a call without a template

    @task
    def square(x: dict) -> int:
        return x["v"] ** 2

    with DAG("plain") as dag:
        square.map([{"v": 1}, {"v": "x" * 500}])
    plain = dag.run(client=client, store=store_dir)
    labels = Store(store_dir).tasks(plain.run_id).set_index("task_id")["label"]
    assert labels["square[0]"] == "v=1"  # no template: the element's own item
    assert labels["square[1]"].startswith("v='xxx") and len(labels["square[1]"]) == 120


def test_a_consumer_allowing_failures_gets_the_successes_and_markers(client, store_dir, load_dag):
    result = load_dag("partial_sweep").run(client=client, store=store_dir)
    assert result.states["summarise"] is TaskState.SUCCESS
    assert result.states["simulate"] is TaskState.FAILED  # the map still failed
    assert result["summarise"] == {
        "mean": pytest.approx((3.0 + 3.1 + 3.3) / 3),
        "failed": ["simulate[2]"],
    }

    store = Store(store_dir)
    with pytest.raises(NotFoundError, match=r"1 of the 4 elements of 'simulate'.*partial=True"):
        store.output(result.run_id, "simulate")
    values = store.output(result.run_id, "simulate", partial=True)
    assert values[:2] == [3.0, 3.1] and values[3] == 3.3
    assert values[2] == Failed(
        "simulate[2]", "failed", "builtins.FloatingPointError: diverged at T=320"
    )
    assert succeeded(values) == [3.0, 3.1, 3.3]


def test_without_allow_failed_the_consumer_is_upstream_failed(client, store_dir, load_dag):
    dag = load_dag("noisy_sweep")
    result = dag.run(client=client, store=store_dir)
    assert result.states["summarise"] is TaskState.UPSTREAM_FAILED


def identity(x: int) -> int:
    return x


def test_label_and_allow_failed_are_checked_when_declared():
    with pytest.raises(ResourceError, match="label: expected a format string"):
        task(label=3)(identity)
    with pytest.raises(ResourceError, match="label: name each field"):
        task(label="T={}")(identity)
    with pytest.raises(ResourceError, match="allow_failed: expected True or False"):
        task(allow_failed="yes")(identity)
