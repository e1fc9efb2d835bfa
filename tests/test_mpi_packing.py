"""Packed MPI jobs (``mpi-packing``): several MPI tasks at once in one batch job, each on its
own nodes of the allocation. The config, scripts and launch lines are checked as data; the
rest runs on the local SLURM's ``mpi`` partition (node5-8, see .ci/start-slurm.sh) with the
real Open MPI.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

import pytest
import yaml
from slurm import require_slurm, wait_until_gone

import provtask
from provtask import Store
from provtask.clusters import job_script, parse_clusters
from provtask.clusters.show import config_text
from provtask.errors import ConfigError, MPIError, ResourceError
from provtask.mpi.allocation import NodeLedger
from provtask.mpi.launch import LaunchSpec, launch_line, launch_spec
from provtask.mpi.shape import packed_partition, pool_label
from provtask.resources import make_resources

DAGS = Path(__file__).parent / "dags"
MPI_NODES = {"node5", "node6", "node7", "node8"}

pytestmark = pytest.mark.timeout(300)


def packed_config(tmp_path: Path, **mpi: object) -> provtask.clusters.ClustersConfig:
    partition = {
        "scheduler": "slurm",
        "queue": "mpi",
        "cores": 2,
        "memory": "1GB",
        "walltime": "00:10:00",
        "max-jobs": 1,
        "idle-timeout": "5s",
        "log-directory": str(tmp_path / "logs"),
        "mpi-packing": {"nodes-per-job": 4},
        "mpi-env": {"OMPI_MCA_mpi_yield_when_idle": 1},
        **mpi,
    }
    return parse_clusters({"default": "mpi", "partitions": {"mpi": partition}})


def require_mpi_partition() -> None:
    """The local SLURM with its ``mpi`` partition: a failure in CI, a skip elsewhere."""
    require_slurm()
    done = subprocess.run(
        ["sinfo", "--noheader", "--format=%R"], capture_output=True, text=True, timeout=20
    )
    if "mpi" in done.stdout.split():
        return
    message = "the local SLURM has no 'mpi' partition (node5-8): re-run bash .ci/start-slurm.sh"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


# -- the config key ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "said"),
    [
        (4, "mpi-packing: expected a mapping with nodes-per-job, e.g. mpi-packing: {nodes-per-job"),
        ({"nodes-per-job": 0}, "nodes-per-job: expected an integer >= 1, got 0"),
        ({"nodes-per-job": "4"}, "nodes-per-job: expected an integer >= 1, got '4'"),
        ({"nodes": 4}, "unknown key 'nodes'; the only key is nodes-per-job"),
        ({}, "nodes-per-job is missing"),
    ],
)
def test_a_bad_mpi_packing_says_what_it_expects(tmp_path, value, said):
    with pytest.raises(ConfigError, match="partition 'mpi': mpi-packing: ") as info:
        packed_config(tmp_path, **{"mpi-packing": value})
    assert said in str(info.value)


def test_mpi_packing_applies_to_slurm_partitions_only():
    with pytest.raises(ConfigError, match="mpi-packing does not apply to scheduler 'local'"):
        parse_clusters(
            {
                "default": "here",
                "partitions": {"here": {"scheduler": "local", "mpi-packing": {"nodes-per-job": 2}}},
            }
        )


def test_the_shown_config_keeps_mpi_packing_and_reads_back_the_same(tmp_path):
    config = packed_config(tmp_path)
    shown = yaml.safe_load(config_text(config))
    assert shown["partitions"]["mpi"]["mpi-packing"] == {"nodes-per-job": 4}
    assert parse_clusters(shown).partitions["mpi"] == config.partitions["mpi"]


# -- routing, job script, launch lines ----------------------------------------------------------
def test_every_mpi_shape_of_a_packed_partition_shares_one_pool(tmp_path):
    from provtask.tasks import mpi_task, task

    packed = packed_config(tmp_path).partitions["mpi"]
    plain = packed_config(tmp_path, **{"mpi-packing": None}).partitions["mpi"]

    def nothing() -> None:
        return None

    narrow = mpi_task(nodes=1, ntasks_per_node=2)(nothing)
    wide = mpi_task(nodes=4)(nothing)
    python = task()(nothing)
    assert pool_label(packed, narrow) == pool_label(packed, wide) == "mpi-packed"
    assert pool_label(packed, python) == "mpi"  # Python tasks keep the partition's jobs
    assert (pool_label(plain, narrow), pool_label(plain, wide)) == (
        "mpi-mpi-1x2x1",
        "mpi-mpi-4x1x1",
    )


def test_a_packed_job_allocates_whole_nodes_for_one_worker_offering_them(tmp_path):
    from click.testing import CliRunner

    from provtask.cli import main

    script = job_script(packed_partition(packed_config(tmp_path).partitions["mpi"]))
    directives = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    for wanted in ("--nodes=4", "--ntasks-per-node=2", "--cpus-per-task=1", "-p mpi"):
        assert f"#SBATCH {wanted}" in directives
    assert "#SBATCH -n 1" not in directives
    worker = script.splitlines()[-1]
    assert "--nthreads 4" in worker and "--resources MPI_NODES=4" in worker

    config = tmp_path / "clusters.yaml"
    config.write_text(yaml.safe_dump({"default": "mpi", "partitions": {"mpi": {
        "scheduler": "slurm", "queue": "mpi", "cores": 2, "memory": "1GB",
        "mpi-packing": {"nodes-per-job": 4}}}}))  # fmt: skip
    shown = CliRunner().invoke(
        main, ["clusters", "--clusters", str(config), "--job-script", "mpi", "--mpi", "2x1x1"]
    )
    assert shown.exit_code == 0, shown.output
    assert "#SBATCH --nodes=4" in shown.output and "--resources MPI_NODES=4" in shown.output


def test_a_launch_in_a_packed_job_names_the_nodes_it_took(tmp_path):
    spec = launch_spec(
        make_resources(nodes=2, ntasks_per_node=2), packed_config(tmp_path).partitions["mpi"]
    )
    assert spec.packed and spec.launcher == "srun"
    assert launch_line(spec, ["lmp"], hosts=["node6", "node7"])[:9] == [
        *("srun", "--mpi=pmix", "--exclusive", "--nodelist=node6,node7", "--nodes=2"),
        *("--ntasks=4", "--ntasks-per-node=2", "--cpus-per-task=1", "--kill-on-bad-exit=1"),
    ]
    mpirun = LaunchSpec("mpirun", nodes=2, ntasks_per_node=2, packed=True)
    assert launch_line(mpirun, ["a"], hosts=["node5", "node8"])[:5] == [
        *("mpirun", "-np", "4", "--host", "node5:2,node8:2"),
    ]
    mpiexec = LaunchSpec("mpiexec", nodes=2, ntasks_per_node=1, packed=True)
    assert launch_line(mpiexec, ["a"], hosts=["n1", "n2"]) == [
        *("mpiexec", "-n", "2", "-ppn", "1", "-hosts", "n1,n2", "a"),
    ]
    unpacked = packed_config(tmp_path, **{"mpi-packing": None}).partitions["mpi"]
    assert not launch_spec(make_resources(nodes=2), unpacked).packed


def test_the_node_ledger_hands_out_disjoint_nodes_and_takes_them_back_however_a_task_ends():
    ledger = NodeLedger(["n1", "n2", "n3", "n4"])
    with ledger.hold(2, "a") as first, ledger.hold(2, "b") as second:
        assert first == ["n1", "n2"] and second == ["n3", "n4"] and ledger.free() == []
        waited: list[list[str]] = []

        def third() -> None:
            with ledger.hold(1, "c") as nodes:
                waited.append(nodes)

        later = threading.Thread(target=third)
        later.start()
        later.join(0.5)
        assert later.is_alive() and not waited  # no node free: it waits
    later.join(10)
    assert waited == [["n1"]] and ledger.free() == ["n1", "n2", "n3", "n4"]
    with pytest.raises(RuntimeError), ledger.hold(3, "d"):
        raise RuntimeError("the launcher failed")
    assert ledger.free() == ["n1", "n2", "n3", "n4"]  # given back in allocation order
    with (
        pytest.raises(MPIError, match="asks for 5 nodes but its packed job has 4"),
        ledger.hold(5, "e"),
    ):
        pass


def test_a_task_wider_than_a_packed_job_is_refused_before_anything_is_submitted(
    tmp_path, store_dir
):
    dag = provtask.load_dag_file(DAGS / "mpi_packing_cases.py", "too_wide")
    with pytest.raises(ResourceError) as info:
        dag.submit(
            store=store_dir,
            clusters=packed_config(tmp_path, **{"mpi-packing": {"nodes-per-job": 2}}),
        )
    said = str(info.value)
    assert "task 'too_wide' asks for nodes=3" in said
    assert "mpi-packing: {nodes-per-job: 2}" in said and "raise nodes-per-job to 3" in said
    assert not (store_dir / "provtask.db").exists()  # nothing was started


# -- on the local SLURM -------------------------------------------------------------------------
def test_one_packed_job_runs_two_mpi_tasks_at_once_then_a_third(tmp_path, store_dir):
    require_mpi_partition()
    rendezvous = tmp_path / "rendezvous"
    rendezvous.mkdir()
    dag = provtask.load_dag_file(DAGS / "mpi_packing_cases.py", "packed")
    result = dag.run(
        params={"folder": str(rendezvous)}, store=store_dir, clusters=packed_config(tmp_path)
    )
    assert result.ok, result.errors  # each meeting waited for the other: they ran together
    store = Store(store_dir)
    attempts = store.attempts(result.run_id)
    meets = attempts[attempts["task_id"].str.startswith("meet")]
    gather = attempts[attempts["task_id"] == "gather_nodes"].iloc[0]
    assert len(meets) == 2 and set(meets["status"]) == {"success"}
    first, second = meets.iloc[0], meets.iloc[1]
    assert first["started_at"] < second["ended_at"] and second["started_at"] < first["ended_at"]

    # Each meeting ran its 2 ranks on 2 nodes of its own, named in its srun step.
    node_sets = [set(json.loads(nodes)) for nodes in meets["mpi_node_list"]]
    assert all(len(nodes) == 2 and nodes <= MPI_NODES for nodes in node_sets)
    assert node_sets[0].isdisjoint(node_sets[1])
    for row, nodes in zip(meets.itertuples(), node_sets, strict=True):
        assert "srun --mpi=pmix --exclusive --nodelist=" in row.mpi_command
        listed = row.mpi_command.split("--nodelist=")[1].split()[0]
        assert set(listed.split(",")) == nodes

    # The third (mpi4py through mpirun --host) came after both, in the same job.
    assert gather["status"] == "success" and gather["started_at"] >= meets["ended_at"].max()
    gathered = store.output(result.run_id, "gather_nodes")
    assert gathered == json.loads(gather["mpi_node_list"]) and len(set(gathered)) == 2
    assert "--host " in gather["mpi_command"]
    assert set(gathered) <= MPI_NODES

    # One batch job for all three, and none left.
    jobs = store.jobs(result.run_id)
    assert list(jobs["name"]) == ["mpi-packed-0"] and jobs["job_id"].notna().all()
    assert set(attempts["batch_job_id"]) == set(jobs["job_id"])
    assert wait_until_gone(set(jobs["job_id"])) == set()
