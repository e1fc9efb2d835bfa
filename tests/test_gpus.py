"""GPU binding: each GPU attempt gets its own devices, recorded in ``attempts.gpu_ids``.

The allocator, the per-process shares and the per-rank wrapper are tested here directly;
the rest runs on the real local SLURM's fake GPUs (partition ``gpu``, node4, ``Gres=gpu:2``;
no real GPU: what is checked is which device ids each task is given).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
import sqlite_utils
from click.testing import CliRunner
from slurm import require_slurm
from test_partitions import clusters_file

import provtask
from provtask import Store
from provtask.analysis.report import write_html
from provtask.cli import main
from provtask.clusters.config import parse_clusters
from provtask.clusters.jobqueue import cluster_kwargs, job_script
from provtask.errors import ConfigError, ResourceError
from provtask.gpu_devices import (
    Binding,
    DeviceAllocator,
    GPUError,
    GPUTask,
    job_devices,
    process_share,
)
from provtask.mpi.ranks import binding_devices
from provtask.store.connection import DB_NAME
from provtask.store.schema import MIGRATIONS, SCHEMA_VERSION

DAGS = Path(__file__).parent / "dags"
RUN = "20261202-120000-a1b2c3"


# -- the allocator, without SLURM ------------------------------------------------------------
def test_attempts_at_once_get_distinct_ids_and_a_later_one_reuses_a_released_id():
    devices = DeviceAllocator(("0", "1", "2"), ("CUDA_VISIBLE_DEVICES",))
    first, second = devices.take(1), devices.take(2)
    assert (first.ids, second.ids) == (("0",), ("1", "2"))
    with pytest.raises(GPUError, match="asks for 1 GPUs but this worker process has 0 free"):
        devices.take(1)
    devices.give_back(first)
    assert devices.take(1).ids == ("0",)


def test_a_python_attempt_has_its_ids_in_the_environment_only_while_it_runs(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    monkeypatch.setenv("ZE_AFFINITY_MASK", "4,5")
    devices = DeviceAllocator(("4", "5"), ("CUDA_VISIBLE_DEVICES", "ZE_AFFINITY_MASK"))

    def seen() -> tuple[str, str]:
        return os.environ["CUDA_VISIBLE_DEVICES"], os.environ["ZE_AFFINITY_MASK"]

    report: dict = {}
    with devices.bind(GPUTask(seen, 1), report) as function:
        assert function() == ("4", "4")
    assert report["gpu_ids"] == "4"
    assert seen() == ("4,5", "4,5")  # the process's own share again
    with pytest.raises(ValueError), devices.bind(GPUTask(seen, 2), {}):
        raise ValueError("the task failed")
    assert devices.take(2).ids == ("4", "5")  # a failed attempt gave its ids back


def test_python_attempts_of_one_process_never_share_the_environment(monkeypatch):
    """Two threads of one worker process: the second Python GPU attempt waits for the first
    to give os.environ back, so neither sees the other's ids."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # the process's share, put back after
    devices = DeviceAllocator(("0", "1"), ("CUDA_VISIBLE_DEVICES",))
    seen: dict[str, list[str]] = {"a": [], "b": []}

    def watch(name: str) -> None:
        for _ in range(50):
            seen[name].append(os.environ["CUDA_VISIBLE_DEVICES"])
            time.sleep(0.002)

    def attempt(name: str) -> None:
        report: dict = {}
        with devices.bind(GPUTask(watch, 1), report) as function:
            function(name)
        seen[name].append(report["gpu_ids"])

    threads = [threading.Thread(target=attempt, args=(n,)) for n in seen]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for values in seen.values():
        assert len(set(values)) == 1  # one id, the recorded one, all along


def test_an_mpi_launch_gets_its_ids_and_leaves_the_process_environment_alone(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")

    class Launch:
        def __init__(self, binding: Binding | None = None) -> None:
            self.binding = binding

        def with_gpus(self, binding: Binding) -> Launch:
            return Launch(binding)

    devices = DeviceAllocator(("0", "1"), ("CUDA_VISIBLE_DEVICES",))
    with (
        devices.bind(GPUTask(Launch(), 1), {}) as one,
        devices.bind(GPUTask(Launch(), 1), {}) as two,
    ):
        assert (one.binding.ids, two.binding.ids) == (("0",), ("1",))  # side by side
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"


def test_each_process_of_a_job_gets_its_own_share():
    job = ("0", "1", "2", "3")
    assert process_share(job, 2, "provtask-gpu-7-0") == ("0", "1")
    assert process_share(job, 2, "provtask-gpu-7-1") == ("2", "3")
    assert process_share(job, 4, "provtask-gpu-7") == job
    assert process_share(job, 1, 3) == ("3",)  # a LocalCluster's workers are 0, 1, ...
    with pytest.raises(GPUError, match="declares 2 GPUs but its job names 1 \\(0\\)"):
        process_share(("0",), 2, "w")


def test_a_jobs_devices_come_from_the_gpu_env_variables_then_slurm():
    variables = ("ROCR_VISIBLE_DEVICES",)
    assert job_devices({"ROCR_VISIBLE_DEVICES": "2,3", "SLURM_JOB_GPUS": "0,1"}, variables) == (
        "2",
        "3",
    )
    assert job_devices({"SLURM_JOB_GPUS": "0,1"}, variables) == ("0", "1")
    assert job_devices({"PROVTASK_GPU_DEVICES": "0", "SLURM_JOB_GPUS": "5"}, variables) == ("0",)
    assert job_devices({}, variables) == ()


@pytest.mark.parametrize("local_rank, device", [("0", "3"), ("1", "5"), ("2", "3")])
def test_each_rank_sees_one_device_from_its_local_rank(local_rank, device):
    wrapped = binding_devices(
        Binding(("3", "5"), ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES")),
        ["/bin/sh", "-c", 'echo "$CUDA_VISIBLE_DEVICES $ROCR_VISIBLE_DEVICES"'],
    )
    env = {**os.environ, "OMPI_COMM_WORLD_LOCAL_RANK": local_rank}
    env.pop("SLURM_LOCALID", None)
    done = subprocess.run(wrapped, env=env, capture_output=True, text=True, check=True)
    assert done.stdout.split() == [device, device]


# -- the store ---------------------------------------------------------------------------
def test_a_store_of_version_10_is_migrated_and_its_attempts_gain_gpu_ids(tmp_path):
    root = tmp_path / "store"
    root.mkdir()
    db = sqlite_utils.Database(root / DB_NAME)
    for migration in MIGRATIONS[:10]:
        migration(db)
    db.execute("PRAGMA user_version = 10")
    db["runs"].insert({"run_id": RUN, "dag_name": "old", "status": "success"})
    db["tasks"].insert({"run_id": RUN, "task_id": "train", "state": "success"})
    db["attempts"].insert({"run_id": RUN, "task_id": "train", "attempt": 1, "status": "success"})
    db.conn.commit()
    db.close()

    store = Store(root)
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 11
    attempts = store.attempts(RUN)
    assert list(attempts["status"]) == ["success"] and attempts["gpu_ids"].isna().all()
    store.close()


# -- configuration ---------------------------------------------------------------------------
def _partition(**settings: object):
    data = {
        "default": "gpu",
        "partitions": {"gpu": {"scheduler": "slurm", "cores": 2, "memory": "1GB", **settings}},
    }
    return parse_clusters(data).partitions["gpu"]


def test_gpu_env_names_the_variables_workers_set():
    part = _partition(
        **{"gpus-per-node": 2, "gpu-env": ["CUDA_VISIBLE_DEVICES", "ZE_AFFINITY_MASK"]}
    )
    assert part.gpu_env == ("CUDA_VISIBLE_DEVICES", "ZE_AFFINITY_MASK")
    assert "export PROVTASK_GPU_ENV=CUDA_VISIBLE_DEVICES,ZE_AFFINITY_MASK" in job_script(part)
    assert "PROVTASK_GPU_ENV" not in job_script(_partition(**{"gpus-per-node": 2}))
    with pytest.raises(ConfigError, match="gpu-env: expected a list of distinct names out of"):
        _partition(**{"gpus-per-node": 2, "gpu-env": ["CUDA_VISIBLE_DEVICE"]})
    with pytest.raises(ConfigError, match="give gpus-per-node too"):
        _partition(**{"gpu-env": ["ROCR_VISIBLE_DEVICES"]})


def test_a_local_partition_gives_its_workers_the_devices_of_its_config():
    data = {"default": "g", "partitions": {"g": {"scheduler": "local", "gpus-per-node": 2}}}
    kwargs = cluster_kwargs(parse_clusters(data).partitions["g"])
    assert kwargs["env"]["PROVTASK_GPU_DEVICES"] == "0,1"


def test_asking_more_gpus_than_a_worker_process_has_is_refused(tmp_path):
    part = _partition(**{"gpus-per-node": 2, "processes": 2})
    from provtask.resources import make_resources

    with pytest.raises(ResourceError, match="gpus=2 but a worker of partition 'gpu' has at most 1"):
        part.check_fits("train", make_resources(gpus=2))


def _cli(*args: str) -> str:
    done = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert done.exit_code == 0, done.output
    return done.output


@pytest.mark.timeout(300)
def test_a_local_partition_gives_each_worker_process_its_own_device(tmp_path, store_dir):
    """No batch system: the devices come from gpus-per-node, one per worker process."""
    clusters = tmp_path / "gpus.yaml"
    clusters.write_text(
        "default: gpu\npartitions:\n  gpu: {scheduler: local, cores: 2, processes: 2, "
        "gpus-per-node: 2}\n"
    )
    folder = tmp_path / "meeting"
    folder.mkdir()
    dag = provtask.load_dag_file(DAGS / "gpu_cases.py", "gpu_meeting")
    result = dag.run(params={"folder": str(folder)}, store=store_dir, clusters=clusters)
    assert result.ok, result.errors
    store = Store(store_dir)
    met = [store.output(result.run_id, t) for t in ("meet", "meet-1")]
    assert sorted(m["devices"] for m in met) == ["0", "1"]
    assert set(store.attempts(result.run_id)["gpu_ids"]) <= {"0", "1"}


# -- on the local SLURM ----------------------------------------------------------------------
@pytest.fixture
def slurm() -> None:
    require_slurm()


@pytest.mark.timeout(400)
def test_gpu_tasks_at_once_get_their_own_device_and_a_later_one_reuses_one(
    slurm, tmp_path, store_dir
):
    """One batch job of two worker processes on node4's 2 GPUs: the two tasks meet (so
    they ran at once), each on one device of its own; the task after them reuses one."""
    clusters = clusters_file(tmp_path, gpu={"cores": 2, "processes": 2, "job-name": "gpu15-meet"})
    folder = tmp_path / "meeting"
    folder.mkdir()
    dag = provtask.load_dag_file(DAGS / "gpu_cases.py", "gpu_meeting")
    result = dag.run(params={"folder": str(folder)}, store=store_dir, clusters=clusters)
    assert result.ok, result.errors

    store = Store(store_dir)
    seen = {t: store.output(result.run_id, t) for t in ("meet", "meet-1", "after")}
    ids = store.attempts(result.run_id).set_index("task_id")["gpu_ids"]
    met = [seen["meet"], seen["meet-1"]]
    assert sorted(m["devices"] for m in met) == ["0", "1"]  # one device each, not "0,1"
    assert met[0]["pid"] != met[1]["pid"]  # two processes of the job, disjoint devices
    assert {t: ids[t] for t in seen} == {t: v["devices"] for t, v in seen.items()}
    assert seen["after"]["devices"] in {"0", "1"}
    attempts = store.attempts(result.run_id)
    assert attempts["batch_job_id"].nunique() == 1  # the one job held both devices

    # What the user reads: provtask tasks, provtask show and the report list the devices.
    listed = _cli("tasks", result.run_id, "--json", "--store", str(store_dir))
    assert {t["task_id"]: t["gpu_ids"] for t in json.loads(listed)} == dict(ids)
    shown = _cli("show", result.run_id, "--store", str(store_dir))
    assert f"meet-1 #1 success: GPUs {ids['meet-1']} on node4" in shown
    html = write_html(store, result.run_id, tmp_path / "report.html").read_text()
    assert "<th>gpu_ids</th>" in html


@pytest.mark.timeout(400)
def test_each_rank_of_an_mpi_task_gets_one_device(slurm, tmp_path, store_dir):
    clusters = clusters_file(tmp_path, gpu={"cores": 2, "job-name": "gpu15-ranks"})
    dag = provtask.load_dag_file(DAGS / "gpu_cases.py", "gpu_ranks")
    result = dag.run(store=store_dir, clusters=clusters)
    assert result.ok, result.errors

    run = Store(store_dir).output(result.run_id, "ranks")
    assert sorted(run.stdout.splitlines()) == ["rank 0 sees 0", "rank 1 sees 1"]
    (attempt,) = Store(store_dir).attempts(result.run_id).itertuples()
    assert attempt.gpu_ids == "0,1"
    assert "provtask-gpu" not in attempt.mpi_command  # the recorded line is the user's launch


@pytest.mark.timeout(400)
def test_python_gpu_tasks_of_one_worker_process_run_one_at_a_time(slurm, tmp_path, store_dir):
    """A worker process of 2 threads and 2 GPUs: a Python GPU task holds the process's
    environment, so the two tasks ran one after the other, each with one device."""
    clusters = clusters_file(tmp_path, gpu={"cores": 2, "job-name": "gpu15-pair"})
    dag = provtask.load_dag_file(DAGS / "gpu_cases.py", "gpu_pair")
    result = dag.run(store=store_dir, clusters=clusters, cache=False)
    assert result.ok, result.errors

    store = Store(store_dir)
    attempts = store.attempts(result.run_id).sort_values("started_at")
    first, second = attempts.itertuples()
    assert first.pid == second.pid and first.ended_at <= second.started_at
    for attempt in (first, second):
        seen = store.output(result.run_id, attempt.task_id)["devices"]
        assert attempt.gpu_ids == seen and seen in {"0", "1"}
