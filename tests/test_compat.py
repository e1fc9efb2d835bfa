"""provtask.compat.jobqueue_features: the ancestor's decorators, run as a provtask DAG."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

import provtask
from provtask import Store
from provtask.compat import jobqueue_features as jqf
from provtask.errors import ConfigError, DAGError

CLUSTERS = """\
default: main
partitions:
  main: {scheduler: local, max-jobs: 1}
  other: {scheduler: local, max-jobs: 1}
"""


@pytest.fixture
def clusters(tmp_path, monkeypatch, store_dir):
    path = tmp_path / "clusters.yaml"
    path.write_text(CLUSTERS)
    monkeypatch.setenv("PROVTASK_CLUSTERS", str(path))
    monkeypatch.setenv("PROVTASK_STORE", str(store_dir))
    return path


def test_on_cluster_runs_the_calls_as_one_run_and_fills_in_the_outputs(clusters):
    script = Path(__file__).parent / "dags" / "jqf_style.py"
    namespace = runpy.run_path(str(script))

    returned = namespace["main"](4)

    assert returned == {"squares": [1, 4, 9, 16], "incremented": [2, 5, 10, 17]}
    store = Store()
    run = store.runs().iloc[0]
    assert run["dag_name"] == "main" and run["status"] == "success"
    attempts = store.attempts(run=run["run_id"])
    partitions = attempts.set_index("task_id")["partition"]
    assert {partitions[f"square-{i}"] for i in range(1, 4)} == {"main"}
    assert set(partitions[[t for t in partitions.index if t.startswith("inc")]]) == {"other"}


def test_calling_result_inside_explains_the_difference(clusters):
    @jqf.task()
    def one() -> int:
        return 1

    @jqf.on_cluster()
    def main() -> int:
        return one().result()

    with pytest.raises(DAGError, match="return it from the function"):
        main()


def test_cluster_objects_and_scale_point_to_the_clusters_file():
    with pytest.raises(ConfigError, match="settings of object into a partition named 'gpu'"):
        jqf.on_cluster(cluster_id="gpu", cluster=object())
    with pytest.raises(ConfigError, match="set max-jobs of partition 'gpu'"):
        jqf.on_cluster(cluster_id="gpu", scale=4)


def test_task_and_mpi_task_map_cluster_id_to_partition():
    @jqf.task(cluster_id="gpu", gpus=1)
    def train() -> None: ...

    @jqf.mpi_task(cluster_id="knl", default_mpi_tasks=4)
    def md(comm) -> None: ...

    assert (train.resources.partition, train.resources.gpus) == ("gpu", 1)
    assert (md.resources.partition, md.resources.ntasks_per_node, md.kind) == ("knl", 4, "mpi")
    assert isinstance(train, provtask.tasks.TaskDef)
