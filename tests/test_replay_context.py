"""`provtask replay` runs where and as the run ran: the recorded clusters config and params
(exact types), the recorded DAG source on request, and `--keep` for harmless code changes.
Real driver processes, the local SLURM for the clusters test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from slurm import require_slurm

from provtask import Store

TYPED = """
import datetime
from pathlib import Path

import numpy as np

from provtask import DAG, task


@task
def describe(shape, origin, groups, count, scale, when):
    return [type(v).__name__ + ":" + repr(v) for v in (shape, origin, groups, count, scale, when)]


PARAMS = {
    "shape": (2, 3),
    "origin": Path("inputs/a.csv"),
    "groups": {"a": [1, 2], "b": [3]},
    "count": np.int64(7),
    "scale": np.float64(0.25),
    "when": datetime.datetime(2026, 12, 2, 18, 14, tzinfo=datetime.timezone.utc),
}
with DAG("typed", params=PARAMS) as dag:
    describe(*(dag.param(name) for name in PARAMS))
"""

FAILING = """
from pathlib import Path

from provtask import DAG, task

FLAGS = Path(__file__).parent


@task
def work(i: int) -> int:
    if (FLAGS / f"fail-{i}").exists():
        raise RuntimeError(f"element {i} is broken")
    return i * 10


with DAG("where") as dag:
    work.map([0, 1])
"""

SWEEP = """
from provtask import DAG, task


def calibrate(x: int) -> int:
    return x + 1


@task
def simulate(i: int) -> int:
    if i % 2:
        raise ValueError(f"bad element {i}")  # the bug
    return calibrate(i) * 100


@task
def post(value: int) -> int:
    return value + 1


@task
def summarize(values: list[int]) -> int:
    return sum(values)


with DAG("sweep", params={"n": 12}) as dag:
    summarize(post.map(simulate.map(range(12))))
"""
FIXED = SWEEP.replace("if i % 2:", "if i < 0:")


def provtask(*args: str, cwd: Path, store: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "provtask.cli", *args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=cwd,
        env={**os.environ, "PROVTASK_STORE": str(store)},
    )


def latest(store_dir: Path) -> str:
    return Store(store_dir).runs().iloc[0]["run_id"]


def test_typed_params_round_trip_through_replay_and_replay_all_is_cached(tmp_path, store_dir):
    (tmp_path / "typed.py").write_text(TYPED)
    first = provtask("run", "typed.py", "--no-progress", cwd=tmp_path, store=store_dir)
    assert first.returncode == 0, first.stderr
    store = Store(store_dir)
    seen = store.output(latest(store_dir), "describe")
    assert seen == [
        "tuple:(2, 3)",
        "PosixPath:PosixPath('inputs/a.csv')",
        "dict:{'a': [1, 2], 'b': [3]}",
        "int64:np.int64(7)",
        "float64:np.float64(0.25)",
        "datetime:datetime.datetime(2026, 12, 2, 18, 14, tzinfo=datetime.timezone.utc)",
    ]

    again = provtask("replay", "--all", "--json", "--no-progress", cwd=tmp_path, store=store_dir)
    assert again.returncode == 0, again.stderr
    outcome = json.loads(again.stdout)
    assert outcome["status"] == "success" and outcome["states"] == {"cached": 1}
    assert outcome["started_at"].endswith("Z") and isinstance(outcome["duration"], float)
    assert (
        store.run_context(outcome["run_id"])["params"]
        == store.run_context(outcome["replay_of"])["params"]
    )

    changed = provtask(
        "replay", "--param", "shape=[4, 5]", "--param", "origin=inputs/b.csv", "--no-progress",
        cwd=tmp_path, store=store_dir,
    )  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    seen = store.output(latest(store_dir), "describe")
    assert seen[:2] == ["tuple:(4, 5)", "PosixPath:PosixPath('inputs/b.csv')"]

    bad = provtask("replay", "--param", "count=many", cwd=tmp_path, store=store_dir)
    assert bad.returncode == 2 and "param 'count'" in bad.stderr


def slurm_clusters(tmp_path: Path) -> Path:
    path = tmp_path / "slurm.yaml"
    path.write_text(
        "default: cpu\n"
        "partitions:\n"
        "  cpu: {scheduler: slurm, queue: cpu, cores: 1, memory: 1GB, walltime: '00:10:00',"
        f" max-jobs: 1, idle-timeout: 5s, log-directory: {tmp_path / 'logs'}}}\n"
    )
    return path


@pytest.mark.timeout(600)
def test_replay_runs_on_the_recorded_slurm_clusters_and_clusters_overrides(tmp_path, store_dir):
    require_slurm()
    (tmp_path / "where.py").write_text(FAILING)
    (tmp_path / "fail-0").touch()
    (tmp_path / "fail-1").touch()
    clusters = slurm_clusters(tmp_path)
    first = provtask(
        "run", "where.py", "--clusters", str(clusters), "--no-progress", cwd=tmp_path,
        store=store_dir,
    )  # fmt: skip
    assert first.returncode == 1, first.stderr
    original = latest(store_dir)
    (tmp_path / "fail-0").unlink()

    replayed = provtask("replay", "latest", "--no-progress", cwd=tmp_path, store=store_dir)

    assert replayed.returncode == 1, replayed.stderr  # work[1] is still broken
    store = Store(store_dir)
    on_slurm = latest(store_dir)
    attempts = store.attempts(on_slurm).set_index("task_id")
    assert set(attempts.index) == {"work[0]", "work[1]"}
    assert set(attempts["partition"]) == {"cpu"} and attempts["batch_job_id"].notna().all()
    context = store.run_context(on_slurm)
    assert context["clusters_config"] == clusters.read_text()
    assert context["clusters_origin"] == f"recorded in run {original} ({clusters})"

    (tmp_path / "fail-1").unlink()
    local = tmp_path / "local.yaml"
    local.write_text("default: here\npartitions:\n  here: {scheduler: local, max-jobs: 1}\n")
    overridden = provtask(
        "replay", "--clusters", str(local), "--no-progress", cwd=tmp_path, store=store_dir
    )
    assert overridden.returncode == 0, overridden.stderr
    run_id = latest(store_dir)
    attempt = store.attempts(run_id).set_index("task_id").loc["work[1]"]
    assert attempt["partition"] == "here" and attempt["batch_job_id"] is None
    assert store.tasks(run_id).set_index("task_id").loc["work[0]", "state"] == "cached"
    assert store.run_context(run_id)["clusters_origin"] == str(local)


def test_keep_reuses_the_outputs_of_a_fixed_task_and_reruns_only_its_failed_elements(
    tmp_path, store_dir
):
    dag_file = tmp_path / "sweep.py"
    dag_file.write_text(SWEEP)
    first = provtask("run", "sweep.py", "--no-progress", cwd=tmp_path, store=store_dir)
    assert first.returncode == 1
    original = latest(store_dir)
    dag_file.write_text(FIXED)

    replayed = provtask(
        "replay", "--keep", "simulate", "--json", "--no-progress", cwd=tmp_path, store=store_dir
    )

    assert replayed.returncode == 0, replayed.stderr
    assert "warning: the DAG file" in replayed.stderr
    run_id = json.loads(replayed.stdout)["run_id"]
    store = Store(store_dir)
    ran = set(store.attempts(run_id)["task_id"])
    odd = {f"simulate[{i}]" for i in range(1, 12, 2)}
    assert ran == odd | {f"post[{i}]" for i in range(1, 12, 2)} | {"summarize"}
    tasks = store.tasks(run_id).set_index("task_id")
    even = [f"simulate[{i}]" for i in range(0, 12, 2)]
    assert set(tasks.loc[even, "cache"]) == {"kept"}
    assert set(tasks.loc[even, "source_run"]) == {original}
    assert "matches keep 'simulate'" in tasks.loc["simulate[0]", "cache_note"]
    assert set(tasks.loc[[f"post[{i}]" for i in range(0, 12, 2)], "cache"]) == {"hit"}
    assert store.output(run_id, "summarize") == sum((i + 1) * 100 + 1 for i in range(12))
    assert store.run_context(run_id)["keep"] == ["simulate"]

    why = provtask("why", "simulate[0]", cwd=tmp_path, store=store_dir)
    assert why.returncode == 0, why.stderr
    assert "cache: kept" in why.stdout and f"run {original}" in why.stdout
    assert "-    if i % 2:" in why.stdout and "+    if i < 0:" in why.stdout

    rerun = provtask("run", "sweep.py", "--no-progress", cwd=tmp_path, store=store_dir)
    assert rerun.returncode == 0, rerun.stderr  # kept outputs stand for the new code now
    assert store.attempts(latest(store_dir)).empty


def test_from_record_runs_the_recorded_source(tmp_path, store_dir):
    dag_file = tmp_path / "where.py"
    dag_file.write_text(FAILING)
    (tmp_path / "fail-1").touch()
    assert provtask("run", "where.py", "--no-progress", cwd=tmp_path, store=store_dir).returncode
    original = latest(store_dir)
    (tmp_path / "fail-1").unlink()
    dag_file.write_text(FAILING.replace("i * 10", "i * 20"))

    warned = provtask("replay", "--from-record", "--no-progress", cwd=tmp_path, store=store_dir)

    assert warned.returncode == 0, warned.stderr
    assert "warning" not in warned.stderr
    store = Store(store_dir)
    assert store.output(latest(store_dir), "work") == [0, 10]  # the recorded code
    dag_file.unlink()
    gone = provtask("replay", original, cwd=tmp_path, store=store_dir)
    assert gone.returncode == 2 and "--from-record" in gone.stderr


def test_diff_names_exactly_the_param_and_the_helper_that_differ(tmp_path, store_dir):
    dag_file = tmp_path / "sweep.py"
    dag_file.write_text(FIXED)
    assert (
        provtask("run", "sweep.py", "--no-progress", cwd=tmp_path, store=store_dir).returncode == 0
    )
    first = latest(store_dir)
    dag_file.write_text(FIXED.replace("return x + 1", "return x + 2"))
    second = provtask(
        "run", "sweep.py", "--param", "n=6", "--no-progress", cwd=tmp_path, store=store_dir
    )
    assert second.returncode == 0, second.stderr

    shown = provtask("diff", first, "--json", cwd=tmp_path, store=store_dir)

    assert shown.returncode == 0, shown.stderr
    found = json.loads(shown.stdout)
    assert found["run_b"] == latest(store_dir)
    assert found["params"] == [{"name": "n", "a": "12", "b": "6"}]
    assert [c["component"] for c in found["code"]] == ["helper:sweep.calibrate"]
    assert found["code"][0]["tasks"] == ["simulate"]
    assert found["clusters"] == [] and found["versions"] == [] and found["env"] == []
    assert "+    return x + 2" in found["dag_source"][0]["diff"]
    assert {o["task_id"] for o in found["outputs"]} == {
        *(f"simulate[{i}]" for i in range(12)),
        *(f"post[{i}]" for i in range(12)),
        "summarize",
    }
    table = provtask("diff", first, latest(store_dir), cwd=tmp_path, store=store_dir)
    assert table.returncode == 0
    assert "helper:sweep.calibrate (simulate)" in table.stdout and " n " in table.stdout
