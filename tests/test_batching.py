"""Small map elements run in batches: values, provenance and failures stay per task."""

from __future__ import annotations

import os
import signal

from provtask import DAG, Store, task
from provtask.engine.batching import HOLD, Durations, Picked, Probing, apply_picks, take_picks
from provtask.engine.rungraph import RunGraph


def test_small_elements_run_in_batches_with_their_own_provenance(client, store_dir, load_dag):
    n = 300
    result = load_dag("small_elements").run(params={"n": n}, client=client, store=store_dir)
    assert result.ok, result.errors
    assert result["total"] == sum(x * x / 2 for x in range(n))  # element-wise and whole-map
    squares = result["square"]
    assert [s["x"] for s in squares] == list(range(n))  # in order
    batched = [s for s in squares if s["dask_key"].startswith("batch-")]
    assert len(batched) > n / 2  # most elements shared a Dask task
    attempts = Store(store_dir).attempts(run=result.run_id)
    elements = attempts[attempts["task_id"].str.startswith("square[")]
    assert len(elements) == n and set(elements["status"]) == {"success"}
    assert elements["started_at"].notna().all() and elements["output_hash"].notna().all()


def test_one_failing_element_does_not_fail_its_batch(client, store_dir, load_dag):
    result = load_dag("small_elements").run(
        params={"n": 200, "bad": 150}, client=client, store=store_dir
    )
    failed = {task_id for task_id, state in result.states.items() if state == "failed"}
    assert failed == {"square[150]", "square"}  # the element, and so its map node
    assert "ValueError: 150 is bad" in result.errors["square[150]"]
    upstream_failed = {t for t, s in result.states.items() if s == "upstream_failed"}
    assert upstream_failed == {"halve[150]", "halve", "total"}
    assert sum(s == "success" for s in result.states.values()) == 1 + 199 + 199


@task  # no retries: an element that used one would fail
def crash_once(x: int, victim: int, marker: str) -> int:
    if x == victim and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)  # takes the whole batch's worker with it
    return x


def test_a_worker_killed_inside_a_batch_costs_its_batch_no_retry(tmp_path):
    """Every element lost with the batch (the culprit cannot be told apart) is retried alone
    without using a retry: all succeed although none has a retry."""
    marker = str(tmp_path / "crashed")
    with DAG("crash_in_batch") as dag:
        # A first map of the same task, so its durations are known when the second expands:
        # the second goes out in batches however slowly the first ran.
        warm_up = crash_once.map(list(range(4)), victim=-1, marker=marker)
        warm_up >> crash_once.map(list(range(400)), victim=390, marker=marker)
    result = dag.run(store=tmp_path / "store", n_workers=2)
    assert os.path.exists(marker)  # the worker was killed
    assert result.ok and {s.value for s in result.states.values()} == {"success"}
    attempts = Store(tmp_path / "store").attempts(run=result.run_id)
    lost = attempts[attempts["status"] == "lost"]
    assert "crash_once-1[390]" in set(lost["task_id"]) and len(lost) > 1  # a batch, not alone
    assert lost["exc_message"].str.contains("retried alone without using a retry").all()


def test_batch_sizes_follow_observed_durations():
    durations = Durations()
    assert durations.batch_size("tiny", ready=1000, slots=2) == 1  # nothing seen yet
    for _ in range(4):
        durations.observe("tiny", 0.0001)
        durations.observe("long", 0.5)
    assert durations.batch_size("long", ready=1000, slots=2) == 1  # never batched
    assert 1 < durations.batch_size("tiny", ready=1000, slots=2) <= 250
    assert durations.batch_size("tiny", ready=8, slots=2) == 2  # every slot keeps work


def test_picks_reach_into_nested_arguments_and_keep_container_types():
    row = (Picked("A", 1), [Picked("A", 0), 5], {"k": (Picked("B", 2), "x")})
    taken, picks = take_picks(row)
    assert taken == ("A", ["A", 5], {"k": ("B", "x")})
    values = {"A": (10, 11), "B": (20, 21, 22)}
    shipped = (values["A"], [values["A"], 5], {"k": (values["B"], "x")})
    assert apply_picks(shipped, picks) == (11, [10, 5], {"k": (22, "x")})
    assert shipped[1][0] == (10, 11)  # the batch's values are not changed


def test_a_few_elements_are_not_held_back(client, store_dir, load_dag):
    result = load_dag("small_elements").run(params={"n": 3}, client=client, store=store_dir)
    assert result.ok and not any(s["dask_key"].startswith("batch-") for s in result["square"])


@task
def where(x: int) -> dict:
    from distributed import get_worker

    return {"x": x, "dask_key": get_worker().get_current_task()}


@task
def collect(items: list[dict]) -> list[int]:
    return [item["x"] for item in items]


def test_small_calls_in_a_loop_run_in_batches_too(client, store_dir):
    with DAG("loop_of_calls") as dag:
        calls = [where(i) for i in range(300)]
        gathered = collect(calls)
    result = dag.run(client=client, store=store_dir)
    assert result.ok, result.errors
    assert result[gathered] == list(range(300))  # each downstream pick in its place
    keys = [result[call]["dask_key"] for call in calls]
    assert sum(key.startswith("batch-") for key in keys) > 150
    attempts = Store(store_dir).attempts(run=result.run_id)
    assert len(attempts) == 301 and set(attempts["status"]) == {"success"}


def test_the_probes_of_a_new_task_name_go_out_before_its_other_elements():
    """The first submission of a new name: two elements per worker slot go first (keyed,
    looked up and sent), the others are keyed after them and held until the probes report."""
    with DAG("probing") as dag:
        where.map(list(range(100)))
    graph = RunGraph(dag, {})
    (node,) = graph.ready
    elements = graph.expand(node)
    probing = Probing(Durations())
    first, later = probing.first_out(elements, slots=2)
    assert first == elements[:4] and later == elements[4:]
    assert probing.admit(first, slots=2, now=0.0) == first
    # Keying 10,000s of elements takes longer than the wait: it starts when they are held.
    assert probing.admit(later, slots=2, now=1.0) == []  # held for the probes' durations
    assert probing.release(now=1.1) == []
    assert probing.release(now=1.0 + HOLD) == later  # the durations never came: alone
    for _ in range(2):
        probing.durations.observe("where", 0.001)
    assert probing.first_out(elements, slots=2) == (elements, [])  # a known name: all at once
