"""``dag.run(keep=...)``: recorded outputs stand although the kept task's code changed, only
for the same inputs; downstream tasks are reused only when their own inputs are unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

import provtask
from provtask import ConfigError, DAGError, Store

SOURCE = """
from provtask import DAG, task


@task
def scale(x: int, factor: int) -> int:
    return x * factor


@task
def total(values: list[int]) -> int:
    return sum(values)


with DAG("keep", params={"factor": 2}) as dag:
    total(scale.map([1, 2, 3], factor=dag.param("factor")))
"""
EDITED = SOURCE.replace("return x * factor", "return factor * x  # same result")


def run(path: Path, text: str, client, store: Path, **options) -> provtask.RunResult:
    path.write_text(text)
    return provtask.load_dag_file(path).run(client=client, store=store, **options)


def caches(store: Path, run_id: str) -> dict[str, str]:
    tasks = Store(store).tasks(run_id)
    tasks = tasks[tasks["kind"] != "map"]
    return dict(zip(tasks["task_id"], tasks["cache"], strict=True))


def test_kept_outputs_stand_for_edited_code_and_only_for_the_same_inputs(
    tmp_path, client, store_dir
):
    path = tmp_path / "keep.py"
    first = run(path, SOURCE, client, store_dir)
    kept = run(path, EDITED, client, store_dir, keep="scale")
    assert kept.ok
    assert caches(store_dir, kept.run_id) == {
        "scale[0]": "kept",
        "scale[1]": "kept",
        "scale[2]": "kept",
        "total": "hit",
    }
    assert Store(store_dir).attempts(kept.run_id).empty
    assert (
        Store(store_dir).tasks(kept.run_id).set_index("task_id").loc["scale[0]", "source_run"]
        == first.run_id
    )

    new_inputs = run(path, EDITED, client, store_dir, keep="scale", params={"factor": 3})
    assert {caches(store_dir, new_inputs.run_id)[f"scale[{i}]"] for i in range(3)} == {"miss"}

    downstream_edited = EDITED.replace("return sum(values)", "return sum(values) + 0")
    fresh = run(tmp_path / "other.py", downstream_edited, client, store_dir, keep="scale*")
    assert caches(store_dir, fresh.run_id)["total"] == "miss"  # its own code changed


def test_without_keep_an_edited_task_is_recomputed(tmp_path, client, store_dir):
    path = tmp_path / "keep.py"
    run(path, SOURCE, client, store_dir)
    edited = run(path, EDITED, client, store_dir)
    assert {caches(store_dir, edited.run_id)[f"scale[{i}]"] for i in range(3)} == {"miss"}


def test_a_keep_pattern_must_be_a_task_name_or_pattern(tmp_path, client, store_dir):
    with pytest.raises(DAGError, match="keep: expected task names"):
        run(tmp_path / "keep.py", SOURCE, client, store_dir, keep=[""])


def test_a_run_made_on_a_client_is_replayed_only_with_a_client_or_clusters(
    tmp_path, client, store_dir
):
    path = tmp_path / "keep.py"
    path.write_text(SOURCE.replace("return x * factor", "raise ValueError('broken')"))
    first = provtask.load_dag_file(path).run(client=client, store=store_dir)
    assert not first.ok
    assert Store(store_dir).run_context(first.run_id)["clusters_origin"] == "distributed client"
    with pytest.raises(ConfigError, match=r"provtask.replay\(RUN, client=...\)"):
        provtask.replay(first.run_id, store=store_dir)
    path.write_text(SOURCE)
    with pytest.warns(UserWarning, match="has changed"):
        again = provtask.replay(first.run_id, store=store_dir, client=client).result()
    assert again.ok and Store(store_dir).output(again.run_id, "total") == 12
    assert callable(provtask.replay)  # not shadowed by the module that defines it


def test_provtask_run_keep_reuses_the_outputs_of_edited_code(tmp_path, store_dir):
    from click.testing import CliRunner

    from provtask.cli import main

    path = tmp_path / "keep.py"
    path.write_text(SOURCE)
    cli = CliRunner()
    base = ["run", str(path), "--store", str(store_dir), "--no-progress", "--workers", "1"]
    assert cli.invoke(main, base).exit_code == 0
    path.write_text(EDITED)
    kept = cli.invoke(main, [*base, "--keep", "scale", "--json"])
    assert kept.exit_code == 0, kept.output
    run_id = Store(store_dir).resolve_run("latest")
    assert set(caches(store_dir, run_id).values()) == {"kept", "hit"}
    assert Store(store_dir).run_context(run_id)["keep"] == ["scale"]
