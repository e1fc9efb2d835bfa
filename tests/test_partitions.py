"""DAGs over several partitions of the real local SLURM (``.ci/start-slurm.sh``).

Each test writes its own clusters file, runs through provtask, and checks through the store
which partition, batch job and node each attempt used, and that no batch job is left.
"""

from __future__ import annotations

import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from drivers import start_provtask
from slurm import require_slurm, wait_until_gone, write_clusters

import provtask
from provtask import Store
from provtask.errors import ResourceError

ROOT = Path(__file__).parent.parent
DAGS = Path(__file__).parent / "dags"

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module", autouse=True)
def slurm() -> None:
    require_slurm()


def clusters_file(tmp_path: Path, **overrides: dict[str, object]) -> Path:
    """cpu and gpu partitions of the local SLURM; ``overrides`` add keys per partition."""
    partitions = {
        "cpu": {"queue": "cpu", "cores": 1, "memory": "1GB", "max-jobs": 2},
        "gpu": {"queue": "gpu", "cores": 1, "memory": "1GB", "gpus-per-node": 2, "max-jobs": 1},
    }
    common = {"walltime": "00:10:00", "idle-timeout": "5s"}
    return write_clusters(
        tmp_path,
        {name: {**common, **s, **overrides.get(name, {})} for name, s in partitions.items()},
    )


def test_a_dag_over_cpu_and_gpu_partitions(tmp_path, store_dir):
    dag = provtask.load_dag_file(ROOT / "dags" / "two_partitions.py")
    result = dag.run(params={"n": 3}, store=store_dir, clusters=clusters_file(tmp_path))
    assert result.ok, result.errors

    store = Store(store_dir)
    attempts = store.attempts(run=result.run_id)
    by_task = attempts.set_index("task_id")
    assert set(by_task.loc[["prepare", "summarise"], "partition"]) == {"cpu"}
    assert set(by_task.loc[["score[0]", "score[1]", "score[2]"], "partition"]) == {"gpu"}
    assert set(by_task.loc[["score[0]", "score[1]", "score[2]"], "node"]) == {"node4"}
    assert set(by_task.loc[["prepare", "summarise"], "node"]) <= {"node1", "node2", "node3"}
    assert attempts["batch_job_id"].notna().all()
    # The GPU tasks ran inside a job holding the partition's GPUs, each on one of them.
    scores = [store.output(result.run_id, f"score[{i}]") for i in range(3)]
    assert {s["gpu"] for s in scores} <= {"0", "1"} and {s["node"] for s in scores} == {"node4"}
    assert [s["gpu"] for s in scores] == list(
        by_task.loc[[f"score[{i}]" for i in range(3)], "gpu_ids"]
    )

    workers = store.workers(result.run_id)
    assert set(workers["partition"]) == {"cpu", "gpu"}
    assert workers["job_submitted_at"].notna().all()
    assert (workers["connected_at"] >= workers["job_submitted_at"]).all()
    assert set(workers["batch_job_id"]) <= set(attempts["batch_job_id"]) | set(
        workers["batch_job_id"]
    )
    jobs = store.jobs(result.run_id)
    assert set(jobs["partition"]) == {"cpu", "gpu"}
    assert set(attempts["batch_job_id"]) <= set(jobs["job_id"])
    assert wait_until_gone(set(jobs["job_id"])) == set()  # every batch job was cancelled


def test_a_refused_submission_fails_the_tasks_with_sbatchs_words(tmp_path, store_dir):
    dag = provtask.load_dag_file(ROOT / "dags" / "two_partitions.py")
    config = clusters_file(tmp_path, gpu={"queue": "no-such-partition"})
    started = time.monotonic()
    result = dag.run(params={"n": 2}, store=store_dir, clusters=config)
    assert time.monotonic() - started < 60  # reported, not waited for
    assert not result.ok
    assert result.states["prepare"].value == "success"
    assert result.states["score[0]"].value == "failed"
    assert result.states["summarise"].value == "upstream_failed"
    error = result.errors["score[0]"]
    assert "refused a job for partition 'gpu'" in error
    assert "invalid partition specified: no-such-partition" in error

    store = Store(store_dir)
    jobs = store.jobs(result.run_id).set_index("partition")
    assert jobs.loc["gpu", "state"] == "REFUSED" and "no-such-partition" in jobs.loc["gpu", "error"]
    failed = store.attempts(run=result.run_id, status="failed")
    assert set(failed["exc_type"]) == {"provtask.errors.BatchJobError"}
    assert wait_until_gone(set(store.jobs(result.run_id)["job_id"].dropna())) == set()


def test_a_job_that_can_never_start_is_reported_with_its_reason(tmp_path, store_dir):
    dag = provtask.load_dag_file(ROOT / "dags" / "two_partitions.py")
    held = {"job-extra-directives": ["--hold"], "pending-timeout": "2s"}
    config = clusters_file(tmp_path, cpu=held)
    handle = dag.submit(params={"n": 1}, store=store_dir, clusters=config)
    shown = set()
    while not handle.wait(timeout=0.2):
        shown.add(handle.progress().jobs)
    assert "cpu: 0 running, 1 queued (JobHeldUser)" in shown  # the progress bar says why
    result = handle.result()
    assert not result.ok
    error = result.errors["prepare"]
    assert "cannot start: SLURM reason 'JobHeldUser'" in error
    jobs = Store(store_dir).jobs(result.run_id)
    job_id = jobs["job_id"].iloc[0]
    assert f"batch job {job_id} of partition 'cpu'" in error
    assert jobs["reason"].iloc[0] == "JobHeldUser"
    assert wait_until_gone({job_id}) == set()


def test_a_cancelled_worker_job_is_recorded_and_its_task_retried(tmp_path, store_dir):
    dag = provtask.load_dag_file(DAGS / "slow_on_cpu.py")
    markers = tmp_path / "started"
    markers.mkdir()
    params = {"n": 2, "seconds": 6, "markers": str(markers), "together": 2}
    handle = dag.submit(params=params, store=store_dir, clusters=clusters_file(tmp_path))
    deadline = time.monotonic() + 300
    while len(list(markers.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(list(markers.iterdir())) == 2, "the two tasks never ran at once"
    victim = (markers / "0").read_text()  # the batch job running nap[0]
    deadline = time.monotonic() + 30  # the engine hears of the second worker soon after
    while handle.progress().jobs != "cpu: 2 running" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert handle.progress().jobs == "cpu: 2 running"  # what the progress bar shows
    subprocess.run(["scancel", victim], check=True)
    result = handle.result(timeout=120)
    assert result.ok, result.errors

    store = Store(store_dir)
    attempts = store.attempts(run=handle.run_id)
    lost = attempts[attempts["status"] == "lost"]
    assert "nap[0]" in set(lost["task_id"])  # the task the cancelled job's worker held
    assert lost["exc_type"].str.contains("KilledWorker").all()
    for task_id in lost["task_id"]:
        tries = attempts[attempts["task_id"] == task_id].set_index("attempt")
        assert tries.loc[2, "status"] == "success"
        assert tries.loc[2, "batch_job_id"] != victim  # retried in another batch job
    jobs = store.jobs(handle.run_id)
    assert victim in set(jobs["job_id"])
    assert wait_until_gone(set(jobs["job_id"])) == set()


def test_ctrl_c_cancels_every_batch_job(tmp_path, store_dir):
    config = clusters_file(tmp_path)
    process = start_provtask(
        "run",
        str(DAGS / "slow_on_cpu.py"),
        "--clusters",
        str(config),
        "--param",
        "seconds=60",
        "--no-progress",
        store=store_dir,
        cwd=ROOT,
        capture=True,
    )
    try:
        deadline = time.monotonic() + 60
        job_ids: set[str] = set()
        while not job_ids and time.monotonic() < deadline:
            time.sleep(0.5)
            if (store_dir / "provtask.db").exists():
                runs = Store(store_dir).runs()
                if len(runs):
                    workers = Store(store_dir).workers(runs["run_id"].iloc[0])
                    job_ids = set(workers["batch_job_id"].dropna())
        assert job_ids, "no worker connected"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert wait_until_gone(job_ids) == set()
    assert Store(store_dir).runs()["status"].iloc[0] == "interrupted"


def test_a_task_asking_more_than_its_partition_has_is_refused_before_any_job(tmp_path, store_dir):
    dag_file = tmp_path / "greedy.py"
    dag_file.write_text(
        textwrap.dedent(
            """
            from provtask import DAG, task

            @task(partition="gpu", gpus=3)
            def train() -> int:
                return 1

            with DAG("greedy") as dag:
                train()
            """
        )
    )
    dag = provtask.load_dag_file(dag_file)
    with pytest.raises(ResourceError, match="gpus") as info:
        dag.submit(store=store_dir, clusters=clusters_file(tmp_path))
    assert "train" in str(info.value)
    assert not (store_dir / "provtask.db").exists()  # nothing was started


def test_a_partition_scales_up_to_max_jobs_with_its_ready_tasks(tmp_path, store_dir):
    dag = provtask.load_dag_file(DAGS / "slow_on_cpu.py")
    markers = tmp_path / "started"
    markers.mkdir()
    result = dag.run(  # the first two tasks wait for each other: both jobs must do work
        params={"n": 5, "seconds": 2, "markers": str(markers), "together": 2},
        store=store_dir,
        clusters=clusters_file(tmp_path, cpu={"max-jobs": 2}),
        cache=False,
    )
    assert result.ok, result.errors
    store = Store(store_dir)
    jobs = store.jobs(result.run_id)
    assert len(jobs) == 2  # five ready tasks, but never more than max-jobs
    naps = store.attempts(run=result.run_id)
    naps = naps[naps["task_id"].str.startswith("nap[")]
    assert set(naps["batch_job_id"]) == set(jobs["job_id"])  # both jobs did work


def test_an_idle_partition_gives_its_jobs_back_and_starts_again_when_needed(tmp_path, store_dir):
    dag = provtask.load_dag_file(DAGS / "phases.py")
    config = clusters_file(tmp_path, cpu={"idle-timeout": "1s"})
    params = {"seconds": 1, "store": str(store_dir)}  # the GPU task waits for the CPU job
    result = dag.run(params=params, store=store_dir, clusters=config, cache=False)
    assert result.ok, result.errors
    store = Store(store_dir)
    cpu_jobs = store.jobs(result.run_id).query("partition == 'cpu'")
    assert cpu_jobs["job_id"].nunique() == 2  # one for `first`, a new one for `last`
    workers = store.workers(result.run_id).query("partition == 'cpu'")
    middle = store.attempts(run=result.run_id).set_index("task_id").loc["middle"]
    # The first CPU worker left while the GPU task was still running.
    assert workers["disconnected_at"].min() < middle["ended_at"]
