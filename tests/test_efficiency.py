"""Throughput efficiency on runs whose timings the test knows in advance."""

from __future__ import annotations

import pytest

from provtask import DAG, Store, task
from provtask.analysis import efficiency
from provtask.analysis.efficiency import CATEGORIES


@task
def nap(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


@task
def fail_after(seconds: float) -> None:
    import time

    time.sleep(seconds)
    raise RuntimeError("wasted")


def test_efficiency_of_known_sleeps_on_two_workers(client, store_dir):
    with DAG("sleeps") as dag:
        nap.map([0.2] * 8)
        fail_after(0.3)
    result = dag.run(client=client, store=store_dir)
    store = Store(store_dir)
    table = efficiency(store, result.run_id).set_index("partition")
    whole = table.loc["all"]

    # What the test knows without the store: 8 x 0.2 s of useful sleep, 0.3 s wasted.
    assert whole["compute"] == pytest.approx(1.6, abs=0.08)
    assert whole["failed"] == pytest.approx(0.3, abs=0.03)
    # Allocation: both single-threaded workers for (nearly) the whole run.
    run = store.run(result.run_id)
    run_length = run["ended_at"] - run["started_at"]
    assert whole["slots"] == 2 and whole["workers"] == 2
    assert 1.9 <= whole["allocated"] <= 2 * run_length
    # 1.9 s of work on 2 slots needs at least 0.95 s, so the run cannot beat 1.9 / (2 x 0.95).
    assert whole["efficiency"] == pytest.approx(whole["compute"] / whole["allocated"])
    assert 0.5 < whole["efficiency"] <= 1.6 / 1.9 + 0.01
    # Every allocated slot-second is accounted for exactly once.
    assert sum(whole[c] for c in CATEGORIES) == pytest.approx(whole["allocated"], rel=1e-6)
    assert all(whole[c] >= 0 for c in CATEGORIES)
    assert table.loc["client", "allocated"] == pytest.approx(whole["allocated"])


def test_idle_time_waiting_for_a_dependency_is_not_scheduling_overhead(client, store_dir):
    with DAG("chain") as dag:
        nap(nap(0.3))  # the second worker has nothing to do for the whole run
    result = dag.run(client=client, store=store_dir)
    whole = efficiency(Store(store_dir), result.run_id).set_index("partition").loc["all"]
    assert whole["compute"] == pytest.approx(0.6, abs=0.05)
    # One slot sits idle through both sleeps with nothing ready: idle (or startup), never
    # scheduling overhead, which only counts idle slots while a task waits to start.
    assert whole["idle"] + whole["startup"] >= 0.55
    assert whole["scheduling"] < 0.1


def test_the_all_row_adds_up_the_partitions(tmp_path):
    """A GPU task waits for its worker while the CPU worker sits idle: that wait is the GPU
    partition's scheduling, not the CPU's, and the all row is the sum of both rows."""
    store = Store(tmp_path / "store")
    writer = store.writer()
    writer.insert("runs", {"run_id": "r", "dag_name": "two", "status": "success"})
    for partition, worker in (("cpu", "tcp://cpu:1"), ("gpu", "tcp://gpu:1")):
        writer.insert(
            "workers",
            {
                "run_id": "r",
                "worker": worker,
                "partition": partition,
                "nthreads": 1,
                "connected_at": 100.0,
                "disconnected_at": 110.0,
            },
        )
    # prepare: cpu 100-101; train: submitted at 100, its gpu worker starts it at 105.
    for task_id, partition, submitted, started, ended in (
        ("prepare", "cpu", 100.0, 100.0, 101.0),
        ("train", "gpu", 100.0, 105.0, 110.0),
    ):
        writer.insert("tasks", {"run_id": "r", "task_id": task_id, "name": task_id})
        writer.insert(
            "attempts",
            {
                "run_id": "r",
                "task_id": task_id,
                "attempt": 1,
                "status": "success",
                "partition": partition,
                "worker": f"tcp://{partition}:1",
                "submitted_at": submitted,
                "started_at": started,
                "function_ended_at": ended,
                "ended_at": ended,
            },
        )
    writer.flush()
    table = efficiency(store, "r").set_index("partition")
    assert table.loc["cpu", "scheduling"] == 0 and table.loc["cpu", "idle"] == pytest.approx(9)
    assert table.loc["gpu", "startup"] == pytest.approx(5) and table.loc["gpu", "compute"] == 5
    for column in ("workers", "slots", "allocated", *CATEGORIES):
        assert table.loc["all", column] == pytest.approx(table.loc[["cpu", "gpu"], column].sum())
    assert table.loc["all", "efficiency"] == pytest.approx(6 / 20)
