"""Lineage on real runs: a diamond with a map, and a DAG where a task fails."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from provtask import DAG, NotFoundError, Store, task
from provtask.analysis.lineage import lineage
from provtask.cli import main


@task
def make_grid(n: int) -> list[float]:
    return [0.5 * i for i in range(n)]


@task
def lower(grid: list[float]) -> float:
    return min(grid) - 1.0


@task
def upper(grid: list[float]) -> float:
    return max(grid) + 1.0


@task
def simulate(x: float, scale: float) -> float:
    return scale * x


@task
def combine(lo: float, hi: float, energies: list[float], label: str) -> str:
    return f"{label}: {hi - lo + sum(energies)}"


@pytest.fixture(scope="module")
def diamond(client, tmp_path_factory):
    """make_grid feeds lower, upper and each simulate element; combine joins them all."""
    store_dir = tmp_path_factory.mktemp("lineage") / "store"
    with DAG("diamond", params={"n": 3, "scale": 2.0}) as dag:
        grid = make_grid(dag.param("n"))
        energies = simulate.map(grid, scale=dag.param("scale"))
        combine(lower(grid), upper(grid), energies, "total")
    run_id = dag.run(client=client, store=store_dir).run_id
    return Store(store_dir), run_id


def test_lineage_walks_the_diamond_and_the_map_back_to_the_params(diamond):
    store, run_id = diamond
    frame = lineage(store, run_id, "combine").set_index("task_id")
    elements = ["simulate[0]", "simulate[1]", "simulate[2]"]
    assert set(frame.index) == {
        "combine", "lower", "upper", "simulate", *elements, "make_grid", "param:n", "param:scale"
    }  # fmt: skip
    assert frame["depth"].to_dict() == {
        "combine": 0, "lower": 1, "upper": 1, "simulate": 1,
        **dict.fromkeys(elements, 2), "make_grid": 2, "param:n": 3, "param:scale": 3,
    }  # fmt: skip
    # The shared input appears once and names every task it fed.
    assert sorted(frame.loc["make_grid", "feeds"]) == sorted(["lower", "upper", *elements])
    assert frame.loc["make_grid", "parent"] in {"lower", "upper", *elements}
    assert all(frame.loc[e, "parent"] == "simulate" for e in elements)
    assert sorted(frame.loc["param:scale", "feeds"]) == elements

    tasks = store.tasks(run_id).set_index("task_id")
    ran = frame[frame["kind"].isin(["call", "element"])]
    for task_id, row in ran.iterrows():
        assert row["output_hash"] == tasks.loc[task_id, "output_hash"]
        assert row["code_hash"] == tasks.loc[task_id, "code_hash"]
        assert row["state"] == "success" and row["attempt"] == 1
    assert ran["worker"].str.startswith("tcp://").all()
    assert frame.loc["param:n", "value"] == "3" and frame.loc["param:scale", "value"] == "2.0"
    assert frame.loc["simulate", "kind"] == "map"


def test_a_hash_prefix_names_the_task_that_produced_it(diamond):
    store, run_id = diamond
    grid_hash = store.tasks(run_id, name="make_grid")["output_hash"].iloc[0]
    frame = lineage(store, run_id, grid_hash[:10])
    assert list(frame["task_id"]) == ["make_grid", "param:n"]
    assert list(frame["depth"]) == [0, 1]


def test_unknown_targets_say_what_to_do(diamond):
    store, run_id = diamond
    with pytest.raises(NotFoundError, match=r"no task 'nope'.*provtask tasks"):
        lineage(store, run_id, "nope")
    with pytest.raises(NotFoundError, match="no task 'abcdef012345' and no task whose output"):
        lineage(store, run_id, "abcdef012345")


def test_equal_outputs_make_a_hash_prefix_ambiguous(client, store_dir):
    with DAG("twins") as dag:
        lower([1.0, 2.0])
        lower.options(id="again")([1.0, 5.0])  # the same value, 0.0, twice
    run_id = dag.run(client=client, store=store_dir).run_id
    shared = Store(store_dir).tasks(run_id)["output_hash"].iloc[0]
    with pytest.raises(NotFoundError, match=r"several tasks .*lower.*again.*by task id"):
        lineage(Store(store_dir), run_id, shared[:8])


def test_lineage_of_a_task_behind_a_failure_shows_the_failed_ancestor(client, store_dir, load_dag):
    run_id = load_dag("failing").run(client=client, store=store_dir).run_id
    frame = lineage(Store(store_dir), run_id, "add-1").set_index("task_id")
    assert set(frame.index) == {"add-1", "add", "boom", "double"}
    assert frame.loc["boom", "state"] == "failed"
    assert frame.loc["add", "state"] == "upstream_failed"
    assert frame["attempt"].isna()["add"]  # never ran: no attempt, no worker

    shown = CliRunner().invoke(main, ["lineage", run_id, "add-1", "--store", str(store_dir)])
    assert shown.exit_code == 0, shown.output
    assert shown.output.startswith("add-1  upstream_failed  code ")
    assert "boom  failed  code " in shown.output and "attempt 1 on tcp://" in shown.output


def test_cli_prints_the_tree_and_json(diamond):
    store, run_id = diamond
    runner = CliRunner()
    args = ["--store", str(store.root)]
    shown = runner.invoke(main, ["lineage", run_id, "combine", *args])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0].startswith("combine  success  out ")
    grid_lines = [line for line in lines if "make_grid" in line]
    # Expanded once with its own provenance, named with ↑ under the four other consumers.
    assert sum("make_grid  success  out" in line for line in grid_lines) == 1
    assert sum("↑ make_grid (expanded under" in line for line in grid_lines) == 4
    assert any("param n = 3" in line for line in lines)

    as_json = runner.invoke(main, ["lineage", run_id[:15], "simulate[1]", "--json", *args])
    records = json.loads(as_json.output)
    assert [r["task_id"] for r in records] == ["simulate[1]", "make_grid", "param:scale", "param:n"]

    missing = runner.invoke(main, ["lineage", run_id, "nope", *args])
    assert missing.exit_code == 1 and "no task 'nope'" in missing.output
