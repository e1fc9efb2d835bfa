"""Chains of small dependent tasks run fused: values, provenance, failures and caching stay
per task (see provtask/engine/chains.py)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from distributed import get_worker

from provtask import DAG, Store, task


@task(retries=1)
def step(previous: dict, index: int, trouble: dict) -> dict:
    """One hop: counts up; ``trouble`` names hops that fail once, always, or kill the worker."""
    if index == trouble.get("broken"):
        raise ValueError(f"hop {index} is broken")
    marker = Path(trouble.get("marker", "/nonexistent")) / f"hop-{index}"
    if index in (trouble.get("flaky"), trouble.get("killer")) and not marker.exists():
        marker.touch()
        if index == trouble.get("killer"):
            os.kill(os.getpid(), signal.SIGKILL)  # takes the whole segment's worker with it
        raise RuntimeError(f"hop {index} fails once")
    time.sleep(trouble.get("sleep", 0))
    return {"n": previous["n"] + 1, "dask_key": get_worker().get_current_task()}


def chain_of(n: int, **trouble) -> tuple[DAG, list[str]]:
    """A DAG of ``n`` hops of ``step``; returns it and the hops' task ids in order."""
    with DAG("chain") as dag:
        ref = step({"n": 0}, 1, trouble)
        ids = [ref.node_id]
        for index in range(2, n + 1):
            ref = step(ref, index, trouble)
            ids.append(ref.node_id)
    return dag, ids


def attempts_in_order(store_dir: Path, run_id: str, ids: list[str]):
    attempts = Store(store_dir).attempts(run=run_id)
    order = {task_id: i for i, task_id in enumerate(ids)}
    attempts["hop"] = attempts["task_id"].map(order)
    return attempts.sort_values(["hop", "attempt"]).reset_index(drop=True)


def test_a_chain_of_small_tasks_runs_fused_with_per_task_provenance(client, store_dir):
    dag, ids = chain_of(200)
    result = dag.run(client=client, store=store_dir)
    assert result.ok, result.errors
    assert result[ids[-1]]["n"] == 200
    fused = [task_id for task_id in ids if result[task_id]["dask_key"].startswith("chain-")]
    assert len(fused) > 150  # after a few hops alone (their durations are learnt)
    attempts = attempts_in_order(store_dir, result.run_id, ids)
    assert list(attempts["task_id"]) == ids and set(attempts["status"]) == {"success"}
    assert attempts["output_hash"].notna().all()
    # Each hop started after the one before it ended, and was ready (submitted) no earlier.
    started, ended = attempts["started_at"].to_list(), attempts["ended_at"].to_list()
    assert all(later >= earlier for later, earlier in zip(started[1:], ended, strict=False))
    assert (attempts["submitted_at"] <= attempts["started_at"]).all()


def test_a_hop_failing_inside_a_chain_is_retried_and_the_chain_goes_on(client, store_dir, tmp_path):
    dag, ids = chain_of(120, flaky=60, marker=str(tmp_path))
    result = dag.run(client=client, store=store_dir)
    assert result.ok, result.errors
    assert result[ids[-1]]["n"] == 120
    attempts = attempts_in_order(store_dir, result.run_id, ids)
    flaky = attempts[attempts["task_id"] == ids[59]]
    assert list(flaky["status"]) == ["failed", "success"]
    assert "hop 60 fails once" in flaky["exc_message"].iloc[0]
    others = attempts[attempts["task_id"] != ids[59]]
    assert len(others) == 119 and set(others["status"]) == {"success"}  # each ran once


def test_a_broken_hop_fails_what_follows_without_running_it(client, store_dir):
    dag, ids = chain_of(120, broken=80)
    result = dag.run(client=client, store=store_dir)
    assert [result.states[t].value for t in ids] == (
        ["success"] * 79 + ["failed"] + ["upstream_failed"] * 40
    )
    attempts = attempts_in_order(store_dir, result.run_id, ids)
    assert set(attempts["task_id"]) == set(ids[:80])  # nothing after the broken hop ran
    assert list(attempts[attempts["task_id"] == ids[79]]["status"]) == ["failed", "failed"]


@task(retries=0)
def climb(x: int, cap: int) -> int:
    return min(x + 1, cap)


def climbing(start: int, n: int = 60, cap: int = 30) -> tuple[DAG, list[Any]]:
    with DAG("climb") as dag:
        refs = [climb(start, cap)]
        for _ in range(n - 1):
            refs.append(climb(refs[-1], cap))
    return dag, refs


def test_a_hop_found_in_the_cache_leaves_its_chain(client, store_dir):
    first, refs = climbing(start=0)  # hops get 0, 1, 2, ..., 30, 30, ...
    ids = [ref.node_id for ref in refs]
    assert first.run(client=client, store=store_dir).ok
    # Starting at -20, hops get -20, ..., 0 (new), then 1, 2, ... as before: from the 22nd
    # hop on every hop is cached, although they were sent to a worker in one chain.
    second, _ = climbing(start=-20)
    result = second.run(client=client, store=store_dir)
    assert result.ok, result.errors
    assert [result.states[t].value for t in ids] == ["success"] * 21 + ["cached"] * 39
    assert result[refs[-1]] == result[ids[-1]] == 30  # by reference or by task id
    attempts = Store(store_dir).attempts(run=result.run_id)
    assert set(attempts["task_id"]) == set(ids[:21])  # no attempt of a cached hop recorded


def test_a_worker_killed_inside_a_chain_costs_no_retry(tmp_path):
    dag, ids = chain_of(150, killer=100, marker=str(tmp_path))
    store_dir = tmp_path / "store"
    result = dag.run(store=store_dir, n_workers=2)
    assert result.ok, result.errors
    assert result[ids[-1]]["n"] == 150
    attempts = Store(store_dir).attempts(run=result.run_id)
    lost = attempts[attempts["status"] == "lost"]
    assert len(lost) >= 1  # the member in flight when its segment's worker died
    assert lost["exc_message"].str.contains("fused chain").all()
    assert lost["exc_message"].str.contains("retried alone without using a retry").all()


def test_hops_that_are_not_small_are_not_fused(client, store_dir):
    dag, ids = chain_of(8, sleep=0.03)
    result = dag.run(client=client, store=store_dir)
    assert result.ok, result.errors
    assert not any(result[t]["dask_key"].startswith("chain-") for t in ids)
