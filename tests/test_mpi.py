"""MPI tasks with the real Open MPI: on this machine (embedded default) and on the local SLURM.

Launch lines are checked as text; everything else runs real programs through provtask and is
checked through the store.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from slurm import require_slurm, wait_until_gone

import provtask
from provtask import ConfigError, Store
from provtask.clusters.config import parse_clusters
from provtask.mpi.launch import LaunchSpec, launch_line, launch_spec
from provtask.mpi.shape import shaped_partition
from provtask.mpi.streams import STREAM_LIMIT
from provtask.resources import make_resources

DAGS = Path(__file__).parent / "dags"

pytestmark = pytest.mark.timeout(240)


def slurm_config(tmp_path: Path, **cpu: object) -> provtask.clusters.config.ClustersConfig:
    partition = {
        "scheduler": "slurm",
        "queue": "cpu",
        "cores": 2,
        "memory": "1GB",
        "walltime": "00:10:00",
        "max-jobs": 1,
        "idle-timeout": "5s",
        "log-directory": str(tmp_path / "logs"),
        **cpu,
    }
    return parse_clusters({"default": "cpu", "partitions": {"cpu": partition}})


# -- launch lines -----------------------------------------------------------------------------
def test_srun_line_asks_for_the_whole_shape_through_pmix():
    spec = LaunchSpec("srun", nodes=2, ntasks_per_node=4, cpus_per_task=2, extra_args=("-l",))
    assert launch_line(spec, ["lmp", "-in", "in.melt"]) == [
        *("srun", "--mpi=pmix", "--nodes=2", "--ntasks=8", "--ntasks-per-node=4"),
        *("--cpus-per-task=2", "--kill-on-bad-exit=1", "-l", "lmp", "-in", "in.melt"),
    ]


def test_mpirun_line_maps_ranks_per_node_and_forwards_the_variables():
    spec = LaunchSpec("mpirun", nodes=2, ntasks_per_node=4, cpus_per_task=2, env=(("A", "1"),))
    assert launch_line(spec, ["lmp"], {"B": "2"}) == [
        *("mpirun", "-np", "8", "--map-by", "ppr:4:node:pe=2"),
        *("-x", "A", "-x", "B", "-x", "OMP_NUM_THREADS", "lmp"),
    ]
    single = LaunchSpec("mpirun", nodes=1, ntasks_per_node=2)
    assert launch_line(single, ["a"])[3:5] == ["--map-by", "ppr:2:node"]  # no pe= for 1 cpu


def test_local_mpirun_oversubscribes_this_machine():
    spec = launch_spec(make_resources(nodes=2, ntasks_per_node=3, launcher="srun"), None)
    assert spec.launcher == "mpirun" and spec.local  # a task's launcher names its cluster's
    assert launch_line(spec, ["a"]) == [
        *("mpirun", "-np", "6", "--oversubscribe", "--bind-to", "none"),
        *("-x", "OMP_NUM_THREADS", "a"),
    ]


def test_mpiexec_line_uses_hydra_options():
    spec = LaunchSpec("mpiexec", nodes=3, ntasks_per_node=2, extra_args=("-bind-to", "core"))
    assert launch_line(spec, ["a", "b"]) == [
        *("mpiexec", "-n", "6", "-ppn", "2", "-bind-to", "core", "a", "b"),
    ]


def test_launcher_comes_from_the_task_then_the_partition_then_the_scheduler(tmp_path):
    config = slurm_config(tmp_path, **{"launcher-args": ["--exclusive"], "mpi-env": {"X": 1}})
    cpu = config.partitions["cpu"]
    assert launch_spec(make_resources(), cpu).launcher == "srun"
    assert launch_spec(make_resources(launcher="mpiexec"), cpu).launcher == "mpiexec"
    spec = launch_spec(make_resources(cpus_per_task=2, walltime="1m"), cpu)
    assert (spec.extra_args, spec.env, spec.walltime) == (("--exclusive",), (("X", "1"),), 60)
    with_mpirun = slurm_config(tmp_path, launcher="mpirun").partitions["cpu"]
    assert launch_spec(make_resources(), with_mpirun).launcher == "mpirun"


def test_mpi_env_must_map_names_to_values(tmp_path):
    with pytest.raises(ConfigError, match="mpi-env: expected a mapping of variable names"):
        slurm_config(tmp_path, **{"mpi-env": ["X=1"]})


def test_an_mpi_shape_is_a_batch_job_of_exactly_that_size(tmp_path):
    from provtask.clusters.jobqueue import job_script

    cpu = slurm_config(tmp_path).partitions["cpu"]
    script = job_script(shaped_partition(cpu, make_resources(nodes=2, ntasks_per_node=2)))
    directives = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    for wanted in ("--nodes=2", "--ntasks=4", "--ntasks-per-node=2", "--cpus-per-task=1"):
        assert f"#SBATCH {wanted}" in directives
    assert "#SBATCH -n 1" not in directives
    assert "--nthreads 1" in script  # one MPI task at a time per allocation


# -- on this machine --------------------------------------------------------------------------
def test_mpi_tasks_on_the_embedded_default(client, store_dir):
    token = f"provtask-hang-{secrets.token_hex(4)}"
    dag = provtask.load_dag_file(DAGS / "mpi_cases.py", "local_cases")
    result = dag.run(params={"token": token}, client=client, store=store_dir)
    store = Store(store_dir)
    attempts = store.attempts(result.run_id).set_index("task_id")

    # mpi4py: rank 0's return value is the result, every rank took part in the allreduce.
    assert store.output(result.run_id, "rank_sum") == (0, 15)
    assert json.loads(attempts.loc["rank_sum", "mpi_node_list"]) and (
        attempts.loc["rank_sum", "mpi_ranks"] == 2
    )

    # A failing program: its exit code and what it said on stderr.
    failing = attempts.loc["failing"]
    assert (failing["status"], failing["exit_code"]) == ("failed", 3)
    assert "exited with code 3" in failing["exc_message"]
    assert "bad input on line 3" in failing["stderr"] and "bad input" in failing["exc_message"]
    assert "bad input on line 3" in store.load_artifact(failing["stderr_hash"])
    assert failing["mpi_command"].startswith("mpirun -np 2 --oversubscribe")

    # A hanging program: killed at its walltime with all its ranks.
    hanging = attempts.loc["hanging"]
    assert hanging["status"] == "timeout" and pd_isna(hanging["exit_code"])
    assert "walltime of 00:00:03" in hanging["exc_message"]
    assert 3 <= hanging["mpi_wall_time"].total_seconds() < 15
    left = subprocess.run(["pgrep", "-f", token], capture_output=True, text=True)
    assert left.stdout == "", f"ranks left running: {left.stdout}"

    # 6 MB of output: no deadlock, and the store keeps its start and its end.
    chatty = attempts.loc["chatty"]
    assert chatty["status"] == "success"
    stdout = store.load_artifact(chatty["stdout_hash"])
    assert len(stdout) < STREAM_LIMIT + 200 and stdout.startswith("x" * 1023)
    assert "bytes not kept" in stdout and stdout.rstrip().endswith("END")
    assert chatty["stdout"].rstrip().endswith("END") and len(chatty["stdout"]) < 70_000
    run = store.output(result.run_id, "chatty")
    assert (run.exit_code, run.ranks, len(run.nodes)) == (0, 2, 2)

    # A missing executable says so, and nothing was launched.
    missing = attempts.loc["missing"]
    assert missing["status"] == "failed" and pd_isna(missing["mpi_command"])
    assert "'no-such-mpi-program' is not found on PATH" in missing["exc_message"]

    # A rank that raises aborts the others instead of leaving them in a collective.
    raising = attempts.loc["raising"]
    assert raising["status"] == "failed" and raising["exit_code"] != 0
    assert "ValueError: rank 1 cannot go on" in raising["stderr"]

    # provtask show and provtask tasks make the MPI attempts readable.
    cli = [sys.executable, "-m", "provtask.cli"]
    show = subprocess.run([*cli, "show", "latest", "--store", str(store_dir)], **TEXT)
    assert "failing #1 failed: 2 ranks on" in show.stdout and "exit code 3" in show.stdout
    assert "$ mpirun -np 2 --oversubscribe" in show.stdout
    listed = subprocess.run([*cli, "tasks", "latest", "--json", "--store", str(store_dir)], **TEXT)
    rows = {row["task_id"]: row for row in json.loads(listed.stdout)}
    assert (rows["failing"]["ranks"], rows["failing"]["exit_code"]) == (2, 3)
    assert rows["rank_sum"]["nodes"] and rows["missing"]["ranks"] is None


TEXT: dict = {"capture_output": True, "text": True, "check": True, "timeout": 60}


def pd_isna(value: object) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


# -- on the local SLURM -----------------------------------------------------------------------
def test_a_two_node_mpi_task_runs_one_rank_on_each_node(tmp_path, store_dir):
    require_slurm()
    dag = provtask.load_dag_file(DAGS / "mpi_cases.py", "two_nodes")
    result = dag.run(store=store_dir, clusters=slurm_config(tmp_path))
    assert result.ok, result.errors
    store = Store(store_dir)
    attempts = store.attempts(result.run_id).set_index("task_id")
    for task_id in ("nodes_by_srun", "nodes_by_mpirun"):
        row = attempts.loc[task_id]
        nodes = json.loads(row["mpi_node_list"])  # one rank on each of two cpu nodes
        assert len(set(nodes)) == 2 and set(nodes) <= {"node1", "node2", "node3"}
        assert (row["mpi_ranks"], row["mpi_nodes"], row["exit_code"]) == (2, 2, 0)
    srun = attempts.loc["nodes_by_srun"]
    assert srun["mpi_command"].startswith("srun --mpi=pmix --nodes=2 --ntasks=2")
    assert sorted(srun["stdout"].split()) == sorted(json.loads(srun["mpi_node_list"]))
    gathered = store.output(result.run_id, "nodes_by_mpirun")
    assert gathered == json.loads(attempts.loc["nodes_by_mpirun", "mpi_node_list"])
    # Both tasks have one shape, so one pool; its jobs are named after it and are gone.
    jobs = store.jobs(result.run_id)
    assert set(jobs["partition"]) == {"cpu"}
    assert all(name.startswith("cpu-mpi-2x1x1-") for name in jobs["name"])
    assert wait_until_gone(set(jobs["job_id"].dropna())) == set()


def test_lammps_example_runs_on_the_embedded_default_and_on_slurm(tmp_path, client):
    from provtask.clusters.config import load_clusters

    root = Path(__file__).parent.parent
    dag = provtask.load_dag_file(root / "dags" / "lammps_melt.py")
    params = {"temperatures": [1.0, 3.0], "workdir": str(tmp_path / "embedded")}
    local = dag.run(params=params, client=client, store=tmp_path / "store")
    assert local.ok, local.errors
    table = Store(tmp_path / "store").output(local.run_id, "summarise")
    assert [row["temperature"] for row in table] == [1.0, 3.0]
    assert all(row["steps"] == 100 and row["atoms"] == 256 for row in table)

    require_slurm()
    started = time.monotonic()
    params["workdir"] = str(tmp_path / "slurm")
    clusters = load_clusters(root / "dags" / "lammps_melt.yaml")
    on_slurm = dag.run(params=params, clusters=clusters, store=tmp_path / "store")
    assert on_slurm.ok, on_slurm.errors
    attempts = Store(tmp_path / "store").attempts(on_slurm.run_id)
    melts = attempts[attempts["task_id"].str.startswith("melt")]
    assert set(melts["mpi_launcher"]) == {"srun"}
    assert all(len(set(json.loads(nodes))) == 2 for nodes in melts["mpi_node_list"])
    assert time.monotonic() - started < 120


def test_pickles_between_worker_and_ranks_are_checked_before_loading(tmp_path):
    """A call or result whose bytes changed after they were written is never unpickled."""
    import cloudpickle

    from provtask import IntegrityError
    from provtask.mpi.attempt import _result
    from provtask.store.artifacts import digest

    result = tmp_path / "result.pkl"
    result.write_bytes(cloudpickle.dumps({"energy": -1.5}))
    (tmp_path / "result.digest").write_text(digest(result.read_bytes()))
    assert _result("md", result) == {"energy": -1.5}
    result.write_bytes(cloudpickle.dumps({"energy": 99.0}))  # changed behind the worker's back
    with pytest.raises(IntegrityError, match="does not match its digest"):
        _result("md", result)

    (tmp_path / "call.pkl").write_bytes(cloudpickle.dumps((print, ("tampered",), {})))
    ran = subprocess.run(
        [sys.executable, "-m", "provtask.mpi.runner", str(tmp_path), "0" * 64],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode != 0 and "changed after it was written" in ran.stderr
    assert "tampered" not in ran.stdout
