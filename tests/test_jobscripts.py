"""Batch scripts and Dask clusters made from partitions.

The scripts need no scheduler; the last tests start real clusters: a LocalCluster, and
SLURMClusters on the local SLURM of ``.ci/start-slurm.sh``.
"""

from __future__ import annotations

import os
from pathlib import Path

import dask
import pytest
from dask_jobqueue.slurm import SLURMJob
from distributed import Client
from slurm import require_slurm, wait_until_gone

from provtask.clusters import (
    PartitionConfig,
    cluster_kwargs,
    job_class,
    job_script,
    load_clusters,
    make_cluster,
    parse_clusters,
)
from provtask.errors import ConfigError

CONFIGS = Path(__file__).parent / "configs"
HPC = load_clusters(CONFIGS / "hpc.yaml")
OTHERS = load_clusters(CONFIGS / "other_schedulers.yaml")


def header_and_body(script: str, prefix: str) -> tuple[list[str], list[str]]:
    """The directive lines of a script, and its other non-empty lines after the shebang."""
    lines = [line for line in script.splitlines()[1:] if line.strip()]
    return [line for line in lines if line.startswith(prefix)], [
        line for line in lines if not line.startswith(prefix)
    ]


def test_a_slurm_script_holds_queue_account_cores_memory_walltime_and_prologue():
    directives, body = header_and_body(job_script(HPC.partitions["cpu"]), "#SBATCH")
    assert directives == [
        "#SBATCH -J provtask-cpu",
        "#SBATCH -p batch",
        "#SBATCH -A chem42",
        "#SBATCH -n 1",
        "#SBATCH --cpus-per-task=24",
        "#SBATCH --mem=84G",  # 90GB, rounded up to whole GiB as SLURM reads G
        "#SBATCH -t 02:00:00",
    ]
    assert body[:2] == ["module load Python", "source ~/venvs/md/bin/activate"]
    worker = body[2].split()
    assert worker[:4] == [
        HPC.partitions["cpu"].python,
        "-m",
        "distributed.cli.dask_worker",
        "tcp://<scheduler-address>:8786",
    ]
    assert worker[worker.index("--nthreads") + 1] == "24"
    assert "--resources" not in worker and len(body) == 3


def test_slurm_gpus_become_gres_and_worker_resources_split_between_processes():
    directives, body = header_and_body(job_script(HPC.partitions["gpu"]), "#SBATCH")
    assert directives[-2:] == ["#SBATCH --constraint=a100", "#SBATCH --gres=gpu:4"]
    assert "#SBATCH -t 24:00:00" in directives and "#SBATCH --mem=168G" in directives
    worker = body[-1].split()
    assert worker[worker.index("--nworkers") + 1] == "2"
    assert worker[worker.index("--nthreads") + 1] == "12"
    assert worker[worker.index("--resources") + 1] == "GPU=2"


def test_directives_can_be_skipped_and_slurm_job_cpu_mem_override(tmp_path):
    config = parse_clusters(
        {
            "default": "cpu",
            "partitions": {
                "cpu": {
                    "scheduler": "slurm",
                    "cores": 4,
                    "memory": "8GB",
                    "job-cpu": 8,
                    "job-mem": "7000M",
                    "job-directives-skip": ["-J "],
                    "job-name": "md",
                    "shebang": "#!/bin/bash -l",
                    "log-directory": str(tmp_path / "logs"),
                }
            },
        }
    )
    script = job_script(config.partitions["cpu"])
    directives, _ = header_and_body(script, "#SBATCH")
    assert script.startswith("#!/bin/bash -l\n")
    assert "#SBATCH --cpus-per-task=8" in directives and "#SBATCH --mem=7000M" in directives
    assert not any(line.startswith("#SBATCH -J") for line in directives)
    assert f"#SBATCH -o {tmp_path}/logs/md-%J.out" in directives
    assert not (tmp_path / "logs").exists()  # showing a script creates nothing


def test_dask_jobqueue_site_config_never_reaches_the_script():
    site = {
        "jobqueue.slurm.account": "site-account",
        "jobqueue.slurm.walltime": "99:00:00",
        "jobqueue.slurm.job-extra-directives": ["--qos=site"],
        "jobqueue.slurm.job-script-prologue": ["source /site/env"],
    }
    with dask.config.set(site):
        # dask-jobqueue on its own would use all of these...
        plain = SLURMJob(scheduler="tcp://x:1", cores=1, memory="1GB").job_script()
        assert all(word in plain for word in ("site-account", "99:00:00", "--qos", "/site/env"))
        # ...a partition's script holds only what its clusters file says.
        script = job_script(HPC.partitions["gpu"])
    assert not any(word in script for word in ("-A ", "site", "99:00:00"))


def test_pbs_script():
    directives, body = header_and_body(job_script(OTHERS.partitions["pbs"]), "#PBS")
    assert directives == [
        "#PBS -N provtask-pbs",
        "#PBS -q workq",
        "#PBS -A proj7",
        "#PBS -l select=1:ncpus=8:mem=16gb:ngpus=1",
        "#PBS -l walltime=04:00:00",
    ]
    assert "--nthreads 8 --memory-limit 16.00GiB" in body[-1] and "--resources GPU=1" in body[-1]


def test_sge_script_names_the_project_and_log_directory():
    directives, _ = header_and_body(job_script(OTHERS.partitions["sge"]), "#$")
    assert directives == [
        "#$ -N provtask-sge",
        "#$ -q all.q",
        "#$ -P proj7",  # `account` is SGE's project
        "#$ -l h_vmem=8G",
        "#$ -l h_rt=01:30:00",
        "#$ -e /scratch/logs/",
        "#$ -o /scratch/logs/",
        "#$ -cwd",
        "#$ -j y",
    ]
    assert not Path("/scratch/logs").exists()


def test_lsf_walltime_is_rounded_up_to_minutes():
    directives, _ = header_and_body(job_script(OTHERS.partitions["lsf"]), "#BSUB")
    assert '#BSUB -P "proj7"' in directives and "#BSUB -n 4" in directives
    assert "#BSUB -W 01:31" in directives  # 01:30:20; bsub -W takes hours:minutes


def test_htcondor_extra_directives_are_submit_file_pairs():
    script = job_script(OTHERS.partitions["condor"])
    assert '+ProjectName = "proj7"' in script.splitlines()
    assert "MY.DaskWorkerDisk = 10000000000" in script


def test_a_local_partition_has_no_batch_script_and_a_local_cluster():
    laptop = OTHERS.partitions["laptop"]
    with pytest.raises(ConfigError, match="scheduler 'local': it runs on a LocalCluster"):
        job_script(laptop)
    with pytest.raises(ConfigError, match="LocalCluster"):
        job_class(laptop)
    assert cluster_kwargs(laptop)["n_workers"] == 3


def test_cluster_kwargs_are_only_what_the_file_says_plus_what_provtask_adds():
    kwargs = cluster_kwargs(OTHERS.partitions["sge"])
    assert set(kwargs) == {
        "config_name",
        "scheduler_options",
        "cores",
        "processes",
        "memory",
        "job_name",
        "python",
        "shebang",
        "death_timeout",
        "worker_command",
        "nanny",
        "worker_extra_args",
        "job_script_prologue",
        "job_extra_directives",
        "job_directives_skip",
        "queue",
        "project",
        "walltime",
        "log_directory",
        "resource_spec",
    }
    assert kwargs["scheduler_options"] == {"dashboard_address": ":0"}  # many per process


def test_a_local_partition_makes_workers_with_its_threads_memory_and_gpu_slots():
    part = PartitionConfig(
        name="laptop", scheduler="local", cores=2, max_jobs=2, memory=10**9, gpus_per_node=1
    )
    with make_cluster(part) as cluster, Client(cluster) as client:
        client.wait_for_workers(2, timeout=60)
        workers = client.scheduler_info(n_workers=-1)["workers"].values()
        assert [w["nthreads"] for w in workers] == [2, 2]
        assert [w["memory_limit"] for w in workers] == [10**9, 10**9]
        assert [w["resources"] for w in workers] == [{"GPU": 1}, {"GPU": 1}]


# -- the local SLURM ----------------------------------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("partition", "gpus", "visible"), [("cpu", 0, None), ("gpu", 2, "0,1")], ids=["cpu", "gpu"]
)
def test_a_slurm_worker_runs_in_its_batch_job_and_no_job_is_left(
    tmp_path, partition, gpus, visible
):
    require_slurm()
    part = PartitionConfig(
        name=partition,
        scheduler="slurm",
        queue=partition,
        cores=1,
        memory=10**9,
        walltime=600,
        gpus_per_node=gpus,
        log_directory=str(tmp_path / "logs"),
    )
    with make_cluster(part) as cluster, Client(cluster) as client:
        cluster.scale(jobs=1)
        client.wait_for_workers(1, timeout=60)
        job_ids = [job.job_id for job in cluster.workers.values()]
        seen = client.run(
            lambda: (os.environ["SLURM_JOB_ID"], os.environ.get("CUDA_VISIBLE_DEVICES"))
        )
        resources = [w["resources"] for w in client.scheduler_info()["workers"].values()]
    assert len(job_ids) == 1 and list(seen.values()) == [(job_ids[0], visible)]
    assert resources == [{"GPU": gpus} if gpus else {}]
    assert not wait_until_gone(set(job_ids)), "closing the cluster left its batch job"


def test_without_slurm_tests_skip_outside_ci_and_fail_in_ci(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sinfo here
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="sinfo is not installed"):
        require_slurm()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"start it with: bash \.ci/start-slurm\.sh"):
        require_slurm()


def test_provtask_clusters_shows_the_job_script_of_an_mpi_shape():
    from click.testing import CliRunner

    from provtask.cli import main

    def clusters(*args: str):
        return CliRunner().invoke(main, ["clusters", *args], catch_exceptions=False)

    shown = clusters(
        "--clusters", str(CONFIGS / "hpc.yaml"), "--job-script", "cpu", "--mpi", "2x4x3"
    )
    assert shown.exit_code == 0
    header, _ = header_and_body(shown.output, "#SBATCH")
    for directive in ("--nodes=2", "--ntasks=8", "--ntasks-per-node=4", "--cpus-per-task=3"):
        assert f"#SBATCH {directive}" in header
    assert "#SBATCH -n 1" not in header  # dask-jobqueue's single task is replaced by the shape

    bad = clusters("--clusters", str(CONFIGS / "hpc.yaml"), "--job-script", "cpu", "--mpi", "2x4")
    assert bad.exit_code == 2 and "expected NODESxRANKSxCPUS such as 2x4x1" in bad.output
    pbs = clusters(
        "--clusters",
        str(CONFIGS / "other_schedulers.yaml"),
        "--job-script",
        "pbs",
        "--mpi",
        "1x2x1",
    )
    assert pbs.exit_code == 2 and "shaped for SLURM partitions only" in pbs.output
    alone = clusters("--clusters", str(CONFIGS / "hpc.yaml"), "--mpi", "1x2x1")
    assert alone.exit_code == 2 and "--mpi goes with --job-script" in alone.output
