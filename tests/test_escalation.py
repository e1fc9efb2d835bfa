"""Escalating retries and walltimes of Python tasks, on real clusters, checked in the store."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import dask
import pandas as pd
import pytest

from provtask import DAG, ResourceError, Store, task

GB = 1_000_000_000


def first_time(marker: str) -> bool:
    """True the first time it is called with ``marker`` (a file path): attempt 1."""
    path = Path(marker)
    if path.exists():
        return False
    path.touch()
    return True


def attempts_of(store_dir: Path, run_id: str, task_id: str) -> list[dict]:
    frame = Store(store_dir).attempts(run_id, task=task_id).sort_values("attempt")
    rows = frame.to_dict("records")
    for row in rows:
        row["resources"] = json.loads(row["resources"])
    return rows


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"retries": 1, "on_oom": {"memory": "x2"}}, ["on_oom['memory']", "not set", "memory="]),
        ({"memory": "1GB", "on_oom": {"memory": "x2"}}, ["retries=0", "set retries=N"]),
        ({"memory": "1GB", "retries": 1, "on_oom": {"memory": "x0.5"}}, ["factor must be > 1"]),
        ({"retries": 1, "on_timeout": {"walltime": "+ages"}}, ["'+ages'", "'+30m'"]),
        ({"retries": 1, "on_oom": {"nodes": 2}}, ["cannot change 'nodes'", "partition"]),
        ({"retries": 1, "on_oom": "x2"}, ["expected a dict", "{'memory': 'x2'}"]),
        ({"retries": 1, "on_node_failure": {"partition": "big nodes"}}, ["partition"]),
    ],
)
def test_bad_escalations_are_refused_when_decorating(options, words):
    with pytest.raises(ResourceError) as caught:
        task(**options)(lambda: None)
    assert all(word in str(caught.value) for word in words), str(caught.value)


def test_escalations_compose_and_survive_options():
    @task(memory="1GB", walltime="1h", retries=3, on_oom={"memory": "+500MB"})
    def solve() -> None: ...

    bigger = solve.options(on_timeout={"walltime": "x1.5", "partition": "long"}, memory="2GB")
    assert bigger.escalation.option("on_oom") == {"memory": "+500MB"}  # kept
    assert bigger.escalation.escalate(bigger.resources, "oom") == {"memory": int(2.5 * GB)}
    assert bigger.escalation.escalate(bigger.resources, "timeout") == {
        "walltime": 5400,
        "partition": "long",
    }
    assert bigger.escalation.escalate(bigger.resources, "error") == {}
    assert not solve.options(on_oom=None).escalation


def test_memory_error_retries_with_twice_the_memory(client, store_dir, tmp_path):
    @task(memory="1GB", retries=2, on_oom={"memory": "x2"})
    def solve(marker: str) -> str:
        if first_time(marker):
            raise MemoryError("cannot allocate the matrix")
        return "solved"

    with DAG("oom") as dag:
        solve(str(tmp_path / "tried"))
    result = dag.run(client=client, store=store_dir)

    assert result.ok and result["solve"] == "solved"
    first, second = attempts_of(store_dir, result.run_id, "solve")
    assert (first["status"], first["failure_cause"]) == ("failed", "oom")
    assert first["resources"]["memory"] == GB
    assert (second["status"], second["resources"]["memory"]) == ("success", 2 * GB)
    assert pd.isna(second["failure_cause"])


def test_walltime_stops_the_attempt_and_the_retry_gets_longer(own_client, store_dir):
    @task(walltime=1, retries=1, on_timeout={"walltime": "x4"})
    def slow(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    @task
    def neighbour(seconds: float) -> float:  # runs on the other worker meanwhile
        time.sleep(seconds)
        return seconds

    with DAG("walltime") as dag:
        slow(2.5)
        neighbour(2.0)
    result = dag.run(client=own_client, store=store_dir)

    assert result.ok and result["slow"] == 2.5 and result["neighbour"] == 2.0
    first, second = attempts_of(store_dir, result.run_id, "slow")
    assert (first["status"], first["failure_cause"]) == ("timeout", "timeout")
    assert "walltime of 1 s" in first["exc_message"]
    assert 1.0 <= first["duration"].total_seconds() < 2.0  # stopped, not left to finish
    assert first["worker"].startswith("tcp://")
    assert (second["status"], second["resources"]["walltime"]) == ("success", 4)
    neighbour_attempts = attempts_of(store_dir, result.run_id, "neighbour")
    assert [a["status"] for a in neighbour_attempts] == ["success"]
    # The stopped attempt's worker process was killed (its nanny started a new one) before
    # the retry started, elsewhere.
    workers = Store(store_dir).workers(result.run_id).set_index("worker")
    assert workers.loc[first["worker"], "disconnected_at"] <= second["started_at"]
    assert second["worker"] != first["worker"]


def test_walltime_without_retries_fails_the_task(own_client, store_dir):
    @task(walltime="1s")
    def stuck() -> None:
        time.sleep(30)

    @task
    def after(value: None) -> None: ...

    with DAG("stuck") as dag:
        after(stuck())
    started = time.monotonic()
    result = dag.run(client=own_client, store=store_dir)
    assert time.monotonic() - started < 20  # stopped, not left to sleep its 30 s

    assert result.states == {"stuck": "failed", "after": "upstream_failed"}
    assert "walltime of 1 s" in result.errors["stuck"]
    [attempt] = attempts_of(store_dir, result.run_id, "stuck")
    assert (attempt["status"], attempt["failure_cause"]) == ("timeout", "timeout")


def test_a_walltime_kill_its_nanny_does_not_answer_fails_the_task_without_stalling(
    store_dir, tmp_path
):
    """The nanny of the overrunning task's worker is stopped (as on a hung host): the kill
    request times out, the run goes on and says the task may still be running there."""
    import os
    import signal
    import subprocess
    import sys

    from distributed import Client, LocalCluster

    nanny_pid_file = tmp_path / "nanny.pid"

    @task(walltime=1)
    def overrun(pid_file: str) -> None:
        nanny = os.getppid()  # a `dask worker` process: the nanny of this worker process
        Path(pid_file).write_text(str(nanny))
        os.kill(nanny, signal.SIGSTOP)
        time.sleep(30)

    @task
    def after(value: None) -> None: ...

    with DAG("hung-nanny") as dag:
        after(overrun(str(nanny_pid_file)))
    with (
        LocalCluster(n_workers=0, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        command = [sys.executable, "-m", "distributed.cli.dask_worker", cluster.scheduler_address]
        worker = subprocess.Popen([*command, "--nthreads", "1", "--no-dashboard"])
        try:
            client.wait_for_workers(1, timeout=120)
            started = time.monotonic()
            result = dag.run(client=client, store=store_dir)
            took = time.monotonic() - started
        finally:
            if nanny_pid_file.exists():
                os.kill(int(nanny_pid_file.read_text()), signal.SIGCONT)
            worker.terminate()
            worker.wait(60)

    assert took < 28  # the run did not wait for the 30 s task, nor hang on the nanny
    assert result.states == {"overrun": "failed", "after": "upstream_failed"}
    error = result.errors["overrun"]
    assert "walltime of 1 s" in error and "could not be reached" in error
    assert "no answer from its nanny" in error and "may run on there" in error
    [attempt] = attempts_of(store_dir, result.run_id, "overrun")
    assert (attempt["status"], attempt["failure_cause"]) == ("timeout", "timeout")


CLUSTERS = """\
default: small
partitions:
  small: {scheduler: local, memory: 400MB}
  big: {scheduler: local, memory: 2GB}
"""


def test_out_of_memory_on_partitions(store_dir, tmp_path):
    """The nanny kills a worker over its memory limit: the task moves to a bigger
    partition; an escalation past the partition's limit fails naming the limit."""
    clusters = tmp_path / "clusters.yaml"
    clusters.write_text(CLUSTERS)

    @task(memory="300MB", retries=1, on_oom={"memory": "1GB", "partition": "big"})
    def hog(size: int) -> int:
        block = b"x" * size  # touched pages: the worker's memory really grows
        time.sleep(3)  # the nanny checks every 0.1 s
        return len(block)

    @task(memory="300MB", retries=2, on_oom={"memory": "x2"})
    def greedy(size: int) -> None:  # runs after hog, alone on small
        raise MemoryError(f"needs more than {size}")

    with DAG("partitions-oom") as dag:
        greedy(hog(500_000_000))
    result = dag.run(clusters=clusters, store=store_dir)

    assert result.states == {"hog": "success", "greedy": "failed"}
    first, second = attempts_of(store_dir, result.run_id, "hog")
    assert (first["status"], first["failure_cause"], first["partition"]) == ("lost", "oom", "small")
    assert "nanny killed it" in first["exc_message"]
    assert (second["status"], second["partition"]) == ("success", "big")
    assert second["resources"] == {**first["resources"], "memory": GB, "partition": "big"}

    [only] = attempts_of(store_dir, result.run_id, "greedy")  # none past the limit
    assert (only["failure_cause"], only["resources"]["memory"]) == ("oom", 300_000_000)
    error = result.errors["greedy"]
    assert "MemoryError: needs more than 500000000" in error and "on_oom={'memory': 'x2'}" in error
    assert "memory=600MB" in error and "partition 'small' has at most 400MB" in error


def _kill_myself() -> None:
    import os
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


def test_a_lost_worker_near_its_memory_limit_counts_as_oom(store_dir, tmp_path):
    """Like a batch system's OOM killer: the worker dies at once (no nanny involved). Near
    its memory limit it is oom, otherwise node_failure; each cause escalates its own way."""
    from distributed import Client, LocalCluster

    config = {
        "distributed.scheduler.allowed-failures": 0,
        "distributed.worker.memory.terminate": False,  # only the "kernel" kills here
    }
    with (
        dask.config.set(config),
        LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            memory_limit="1GB",
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):

        @task(
            memory="1GB", retries=1, on_oom={"memory": "x2"}, on_node_failure={"cpus_per_task": 2}
        )
        def fill(marker: str) -> str:
            import psutil

            if first_time(marker):
                rss = psutil.Process().memory_info().rss
                block = b"x" * max(0, int(0.9 * GB) - rss)  # to 90% of the worker's limit
                time.sleep(2)  # the worker reports its memory use to the scheduler
                assert block
                _kill_myself()
            return "filled"

        @task(
            memory="1GB", retries=1, on_oom={"memory": "x2"}, on_node_failure={"cpus_per_task": 2}
        )
        def crash(marker: str, after: str) -> str:
            if first_time(marker):
                time.sleep(1)
                _kill_myself()
            return "recovered"

        with DAG("lost") as dag:
            crash(str(tmp_path / "crash"), fill(str(tmp_path / "fill")))
        result = dag.run(client=client, store=store_dir)

    assert result.ok
    first, second = attempts_of(store_dir, result.run_id, "fill")
    assert (first["status"], first["failure_cause"]) == ("lost", "oom")
    assert "last reported memory use" in first["exc_message"]
    assert second["resources"]["memory"] == 2 * GB
    first, second = attempts_of(store_dir, result.run_id, "crash")
    assert (first["status"], first["failure_cause"]) == ("lost", "node_failure")
    assert "KilledWorker" in first["exc_type"]
    assert (second["resources"]["cpus_per_task"], second["resources"]["memory"]) == (2, GB)


def test_an_escalation_to_an_unknown_partition_is_refused_before_the_run(store_dir, tmp_path):
    clusters = tmp_path / "clusters.yaml"
    clusters.write_text(CLUSTERS)

    @task(retries=1, on_oom={"partition": "bigg"})
    def hog() -> None: ...

    with DAG("typo") as dag:
        hog()
    with pytest.raises(ResourceError, match=r"hog \(on oom\).*did you mean 'big'"):
        dag.submit(clusters=clusters, store=store_dir)
    assert not store_dir.exists()  # nothing started
