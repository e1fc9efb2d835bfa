"""A run ends, whatever raises: ``dag.run()`` returns or raises within seconds, the store says
how the run ended, and no batch job of the run is left in SLURM.

Each failure is injected into real components (a real store, real pools, the local SLURM):
a store that cannot be written, a run row that cannot be queued, a cluster that cannot
start, a pool that cannot be closed, a bug in the engine's loop, and SIGTERM.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from slurm import jobs_named, require_slurm, wait_until_none_named

import provtask
from provtask import DAG, Store, task
from provtask.clusters.pool import Pool
from provtask.engine.recorder import RunRecorder
from provtask.engine.runner import Engine
from provtask.errors import RunInterrupted, StoreError

pytestmark = pytest.mark.timeout(180)

DAGS = Path(__file__).parent / "dags"
ENDS_WITHIN = 30.0  # s from a failure to dag.run() returning, batch jobs' start-up included


@task
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def one_nap(seconds: float = 0.1) -> DAG:
    with DAG("lifecycle") as dag:
        nap(seconds)
    return dag


def clusters_file(tmp_path: Path, job_name: str, **extra: str) -> Path:
    """The local SLURM's cpu partition, its jobs named ``job_name`` (so that this test's
    jobs can be told from other users' jobs)."""
    settings = {
        "scheduler": "slurm",
        "queue": "cpu",
        "cores": 1,
        "memory": "1GB",
        "walltime": "00:05:00",
        "job-name": job_name,
        "log-directory": str(tmp_path / "logs"),
        **extra,
    }
    lines = ["default: cpu", "partitions:", "  cpu:"]
    lines += [f"    {key}: {value!r}".replace("'", '"') for key, value in settings.items()]
    path = tmp_path / "clusters.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def job_name() -> str:
    return f"provtask-life-{secrets.token_hex(3)}"


def ends_quickly(call, *args, **kwargs):
    """Call ``call``; assert it returns or raises within ENDS_WITHIN seconds."""
    started = time.monotonic()
    try:
        return call(*args, **kwargs)
    finally:
        assert time.monotonic() - started < ENDS_WITHIN


def test_a_store_that_cannot_be_written_ends_the_run_at_once(store_dir, monkeypatch):
    def refuse(self):
        raise StoreError("the store is read-only")

    monkeypatch.setattr(Store, "writer", refuse)
    handle = one_nap().submit(store=store_dir, n_workers=1)
    assert handle.wait(timeout=ENDS_WITHIN), "the run's future was never resolved"
    with pytest.raises(StoreError, match="read-only"):
        handle.result()


def test_a_run_row_that_cannot_be_queued_ends_the_run_and_closes_the_writer(store_dir, monkeypatch):
    def refuse(self, row):
        raise StoreError("no room for the run's row")

    def writers() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "provtask-store-writer"}

    monkeypatch.setattr(RunRecorder, "start_run", refuse)
    earlier = writers()  # of runs of other tests, still closing
    with pytest.raises(StoreError, match="no room"):
        ends_quickly(one_nap().run, store=store_dir, n_workers=1)
    assert not writers() - earlier  # this run's writer is closed
    assert Store(store_dir).runs().empty  # no row says "running" for ever


def test_a_cluster_that_cannot_start_fails_the_run(tmp_path, store_dir, job_name):
    require_slurm()
    config = clusters_file(tmp_path, job_name, interface="no-such-interface")
    with pytest.raises(RuntimeError, match="no-such-interface"):
        ends_quickly(one_nap().run, store=store_dir, clusters=config)
    run = Store(store_dir).runs().iloc[0]
    assert run["status"] == "failed" and "no-such-interface" in run["error"]
    assert wait_until_none_named(job_name) == set()


def test_a_bug_in_the_engine_loop_cancels_the_batch_jobs(
    tmp_path, store_dir, job_name, monkeypatch
):
    require_slurm()
    seen_jobs: set[str] = set()

    def buggy(self, report):
        seen_jobs.update(jobs_named(job_name))  # a worker reported: its job is running
        raise ZeroDivisionError("a bug in the engine")

    monkeypatch.setattr(Engine, "_route_report", buggy)
    config = clusters_file(tmp_path, job_name)
    with pytest.raises(ZeroDivisionError, match="a bug in the engine"):
        ends_quickly(one_nap().run, store=store_dir, clusters=config)
    assert seen_jobs, "the failure was injected before any batch job ran"
    run = Store(store_dir).runs().iloc[0]
    assert run["status"] == "failed" and "ZeroDivisionError" in run["error"]
    assert Store(store_dir).tasks(run["run_id"])["state"].tolist() == ["cancelled"]
    assert wait_until_none_named(job_name) == set()


def test_a_pool_that_cannot_be_closed_still_has_its_jobs_cancelled(
    tmp_path, store_dir, job_name, monkeypatch
):
    require_slurm()
    left_open: list[Pool] = []

    def stuck(self):  # as when closing a dask-jobqueue cluster times out
        left_open.append(self)
        raise TimeoutError("closing the cluster timed out")

    monkeypatch.setattr(Pool, "close", stuck)
    config = clusters_file(tmp_path, job_name)
    try:
        with pytest.raises(TimeoutError, match="timed out"):
            ends_quickly(one_nap().run, store=store_dir, clusters=config)
        assert left_open, "no pool was closed"
        assert wait_until_none_named(job_name) == set()
        run = Store(store_dir).runs().iloc[0]
        assert run["status"] == "failed" and "closing a pool failed" in run["error"]
    finally:
        monkeypatch.undo()
        for pool in left_open:
            pool.close()


def test_sigterm_to_a_plain_script_cancels_its_batch_jobs(tmp_path, store_dir, job_name):
    require_slurm()
    config = clusters_file(tmp_path, job_name)
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import provtask
            dag = provtask.load_dag_file({str(DAGS / "slow_on_cpu.py")!r})
            dag.run(params={{"seconds": 120}}, store={str(store_dir)!r}, clusters={str(config)!r})
            """
        )
    )
    process = subprocess.Popen(
        [sys.executable, str(script)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not jobs_named(job_name) or not _attempts_started(store_dir):
            assert time.monotonic() < deadline, "no attempt started"
            assert process.poll() is None, process.stderr.read()
            time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=ENDS_WITHIN + 30)
    finally:
        process.kill()
    assert RunInterrupted.__name__ in stderr
    assert wait_until_none_named(job_name) == set()
    run = Store(store_dir).runs().iloc[0]
    assert run["status"] == "interrupted"


def _attempts_started(store_dir: Path) -> bool:
    if not (store_dir / "provtask.db").exists():
        return False
    store = Store(store_dir)
    try:
        runs = store.runs()
        return bool(len(runs)) and bool(len(store.attempts(run=runs["run_id"].iloc[0])))
    finally:
        store.close()


def test_a_failing_engine_resolves_the_handle(store_dir, monkeypatch):
    """``RunHandle.wait`` and the exit hook wait on the run's future: it is resolved."""
    monkeypatch.setattr(Engine, "run", lambda self: 1 / 0)
    handle = provtask.submit(one_nap(), store=store_dir, n_workers=1)
    assert handle.wait(timeout=ENDS_WITHIN) and handle.done()
    with pytest.raises(ZeroDivisionError):
        handle.result()
    assert Store(store_dir).runs()["status"].tolist() == ["failed"]
