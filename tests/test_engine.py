"""The engine end to end on a real LocalCluster, checked through the store."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time

import pandas as pd
import pytest

from provtask import DAG, DAGError, IntegrityError, RunInterrupted, Store, task


def test_failing_task_states_attempts_errors_and_workers(client, store_dir, load_dag):
    result = load_dag("failing").run(client=client, store=store_dir)

    assert result.status.value == "failed"
    store = Store(store_dir)
    states = dict(store.tasks(result.run_id)[["task_id", "state"]].itertuples(index=False))
    assert states == {
        "double": "success",
        "boom": "failed",
        "add": "upstream_failed",
        "add-1": "upstream_failed",
        "independent": "success",
    }
    run = store.run(result.run_id)
    assert run["status"] == "failed" and run["ended_at"] >= run["started_at"]

    attempts = store.attempts(result.run_id).set_index("task_id")
    assert set(attempts.index) == {"double", "boom", "independent"}  # never-run tasks have none
    for row in attempts.itertuples():
        assert row.submitted_at <= row.started_at <= row.ended_at
        assert row.hostname == socket.gethostname()
        assert row.pid > 0 and row.worker.startswith("tcp://")
        assert row.peak_rss > 10_000_000 and row.cpu_time >= pd.Timedelta(0)
    boom = attempts.loc["boom"]
    assert boom.status == "failed"
    assert boom.exc_type == "builtins.ValueError" and boom.exc_message == "bad input 2"
    assert 'raise ValueError(f"bad input {x}")' in boom.traceback
    tasks = store.tasks(result.run_id).set_index("task_id")
    assert tasks.loc["boom", "error"] == "builtins.ValueError: bad input 2"
    assert tasks.loc["add", "error"] == "upstream boom failed"
    assert result.errors["boom"] == "builtins.ValueError: bad input 2"

    workers = store.workers(result.run_id)
    assert len(workers) == 2
    assert set(attempts["worker"]) <= set(workers["worker"])
    assert (workers["nthreads"] == 1).all() and (workers["host"] == socket.gethostname()).all()
    assert (workers["disconnected_at"] >= workers["connected_at"]).all()

    edges = set(store.edges(result.run_id).itertuples(index=False, name=None))
    assert ("double", "boom", "data") in edges and ("boom", "add", "data") in edges


def test_values_inputs_and_params_are_recorded(client, store_dir):
    @task
    def scale(values: list[int], factor: int) -> list[int]:
        return [v * factor for v in values]

    @task
    def square(x: int) -> int:
        return x * x

    @task
    def total(xs: list[int], offset: int = 0) -> int:
        return sum(xs) + offset

    with DAG("values", params={"factor": 3}) as dag:
        squares = square.map(scale([1, 2, 3], dag.param("factor")))
        total(squares, offset=100)

    result = dag.run(client=client, store=store_dir, params={"factor": 2})
    assert result.ok
    assert result["scale"] == [2, 4, 6]
    assert result["square"] == [4, 16, 36]
    assert result["total"] == 156

    tasks = Store(store_dir).tasks(result.run_id).set_index("task_id")
    assert list(tasks.loc[["square[0]", "square[1]", "square[2]"], "parent"]) == ["square"] * 3
    import json

    scale_inputs = {i["name"]: i for i in json.loads(tasks.loc["scale", "inputs"])}
    assert scale_inputs["values"]["repr"] == "[1, 2, 3]"
    assert scale_inputs["factor"] == {**scale_inputs["factor"], "param": "factor", "repr": "2"}
    element = json.loads(tasks.loc["square[1]", "inputs"])[0]
    assert element["task"] == "scale" and element["item"] == 1
    assert json.loads(tasks.loc["total", "inputs"])[0]["task"] == "square"
    assert Store(store_dir).run(result.run_id)["params"] == {"factor": 2}


def test_retry_after_failure_records_both_attempts(client, store_dir, load_dag, tmp_path):
    result = load_dag("edge_cases", "flaky").run(
        client=client, store=store_dir, params={"marker_dir": str(tmp_path)}
    )
    assert result.ok and result["flaky"] == "recovered"
    attempts = Store(store_dir).attempts(result.run_id)
    assert list(attempts["attempt"]) == [1, 2]
    assert list(attempts["status"]) == ["failed", "success"]
    assert attempts["exc_message"].iloc[0] == "first attempt fails"


def test_worker_death_is_a_lost_attempt_then_retried(own_client, store_dir, load_dag, tmp_path):
    result = load_dag("edge_cases", "die_once").run(
        client=own_client, store=store_dir, params={"marker_dir": str(tmp_path)}
    )
    assert result.ok and result["die_once"] == "survived"
    attempts = Store(store_dir).attempts(result.run_id)
    assert list(attempts["status"]) == ["lost", "success"]
    assert "KilledWorker" in attempts["exc_type"].iloc[0]
    # The dead worker is recorded when it left, not at the run's end.
    workers = Store(store_dir).workers(result.run_id)
    departed = workers[workers["disconnected_at"] <= attempts["started_at"].iloc[1]]
    assert len(departed) == 1


def test_unpicklable_result_fails_the_task_with_a_clear_message(client, store_dir, load_dag):
    result = load_dag("edge_cases", "unpicklable_result").run(client=client, store=store_dir)
    assert result.states["make_lock"].value == "failed"
    assert result.states["echo"].value == "upstream_failed"
    assert "result could not be stored" in result.errors["make_lock"]
    assert "lock" in result.errors["make_lock"]


def test_unpicklable_argument_is_refused_before_anything_runs(client, store_dir):
    @task
    def use(x: object) -> None: ...

    with DAG("bad_arg") as dag:
        use(threading.Lock())
    with pytest.raises(DAGError, match=r"task 'use': argument 0 cannot be sent to a worker"):
        dag.run(client=client, store=store_dir)
    assert Store(store_dir).runs().empty


def test_map_over_a_non_list_fails_the_map_and_its_downstream(client, store_dir, load_dag):
    result = load_dag("edge_cases", "map_over_int").run(client=client, store=store_dir)
    assert result.states["number"].value == "success"
    assert result.states["echo"].value == "failed"
    assert "cannot fan out over the output of number" in result.errors.get(
        "echo", Store(store_dir).tasks(result.run_id).set_index("task_id").loc["echo", "error"]
    )
    assert result.states["echo-1"].value == "upstream_failed"


def test_large_output_is_a_verified_file_artifact(client, store_dir, load_dag):
    result = load_dag("edge_cases", "big_output").run(client=client, store=store_dir)
    assert result["big_array"] == bytes(range(256)) * 1024
    files = list((store_dir / "artifacts").rglob("*"))
    artifact = next(f for f in files if f.is_file())
    data = bytearray(artifact.read_bytes())
    data[-5] ^= 0xFF
    artifact.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="corrupted"):
        result["big_array"]


def test_cancel_records_an_interrupted_run(client, store_dir, load_dag):
    handle = load_dag("edge_cases", "slow").submit(client=client, store=store_dir)
    deadline = time.monotonic() + 30
    while handle.progress().success < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    handle.cancel("test")
    with pytest.raises(RunInterrupted):
        handle.result(timeout=60)

    store = Store(store_dir)
    assert store.run(handle.run_id)["status"] == "interrupted"
    states = store.tasks(handle.run_id).query("kind == 'element'")["state"].value_counts()
    assert states["success"] >= 2 and states["cancelled"] >= 1
    assert states["success"] + states["cancelled"] == 12
    assert "cancelled" in set(store.attempts(handle.run_id)["status"])


def test_handles_overlap_and_can_be_awaited(client, store_dir, load_dag):
    first = load_dag("edge_cases", "slow").submit(
        client=client, store=store_dir, params={"durations": [0.2] * 4}
    )
    second = load_dag("failing").submit(client=client, store=store_dir)
    assert not first.done()

    async def both():
        return await asyncio.gather(first, second)

    slow_result, failing_result = asyncio.run(both())
    assert slow_result.ok and slow_result["nap"] == [0.2] * 4
    assert failing_result.status.value == "failed"
    assert len(Store(store_dir).runs()) == 2


@task
def item(x: int) -> int:
    return x


@task
def sum_once_open(values: list[int], gate: str) -> int:
    """Waits for ``gate``: the test decides when the run may end."""
    while not os.path.exists(gate):
        time.sleep(0.02)
    return sum(values)


def test_store_is_readable_while_a_large_run_writes(client, store_dir, tmp_path):
    """Readers (a new Store each time) see the rows of a run writing 2,000 tasks, without a
    lock error; the run's last task waits until three reads have seen them."""
    gate = tmp_path / "gate"
    with DAG("readable_while_writing") as dag:
        total = sum_once_open(item.map(list(range(2000))), str(gate))
    handle = dag.submit(client=client, store=store_dir)
    reads = 0
    while not handle.done():
        reader = Store(store_dir)
        if not reader.runs().empty:  # the run's first rows may come in two commits
            tasks = reader.tasks(handle.run_id)
            reader.attempts(handle.run_id, status="success")
            reads += len(tasks) >= 3
        reader.close()
        if reads >= 3:
            gate.touch()
    result = handle.result()
    assert result.ok and result[total] == sum(range(2000))
    attempts = Store(store_dir).attempts(result.run_id)
    assert len(attempts) == 2001 and (attempts["status"] == "success").all()


def test_values_are_freed_from_workers_once_their_consumers_finish(client, store_dir):
    @task
    def produce() -> bytes:
        return b"x" * 1000

    @task
    def consume(data: bytes) -> int:
        return len(data)

    @task
    def linger(n: int) -> int:
        time.sleep(4)
        return n

    with DAG("free") as dag:
        linger(consume(produce()))

    handle = dag.submit(client=client, store=store_dir)

    def values_in_cluster(prefix: str) -> list[str]:
        return client.run_on_scheduler(
            lambda dask_scheduler: [
                key
                for key, state in dask_scheduler.tasks.items()
                if str(key).startswith(prefix) and state.state == "memory"
            ]
        )

    deadline = time.monotonic() + 30
    while handle.progress().success < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)  # futures are let go of every 0.5 s, then the scheduler is told
    assert values_in_cluster("produce-") == []  # its only consumer has finished
    assert len(values_in_cluster("consume-")) == 1  # still an input of the running linger
    assert handle.result(timeout=60)["produce"] == b"x" * 1000  # the store keeps the value


def test_blocking_run_works_inside_a_running_event_loop_like_jupyter(store_dir, load_dag):
    async def notebook_cell():
        # A Jupyter cell runs synchronous code while the kernel's event loop is running.
        return load_dag("failing").run(store=store_dir, n_workers=1)

    result = asyncio.run(notebook_cell())
    assert result.states["independent"].value == "success"
    assert result["independent"] == "fine"
    assert (
        Store(store_dir).run(result.run_id)["cluster"].startswith("local: LocalCluster(1 workers")
    )


def test_zipping_an_output_with_itself_and_a_failed_sink_map(client, store_dir):
    @task
    def numbers() -> list[int]:
        return [1, 2, 3]

    @task
    def add(a: int, b: int) -> int:
        return a + b

    @task
    def scalar() -> int:
        return 5

    with DAG("zip_self") as dag:
        xs = numbers()
        add.map(xs, xs)
        add.options(id="bad_map").map(scalar(), [1])  # fails to expand; nothing downstream

    result = dag.run(client=client, store=store_dir)
    assert result["add"] == [2, 4, 6]
    assert result.states["bad_map"].value == "failed"
    assert "cannot fan out over the output of scalar" in result.errors["bad_map"]
    assert result.status.value == "failed"  # a failed map fails the run even with no consumer


def test_a_run_whose_driver_died_shows_as_interrupted(store_dir):
    store = Store(store_dir)
    long_ago = time.time() - 3600
    store.db["runs"].insert(
        {
            "run_id": "20200101-000000-dead00",
            "dag_name": "x",
            "params": "{}",
            "status": "running",
            "started_at": long_ago,
            "heartbeat_at": long_ago,
        }
    )
    alive = {**store.db["runs"].get("20200101-000000-dead00"), "started_at": long_ago + 1}
    alive["heartbeat_at"] = time.time()
    store.db["runs"].insert({**alive, "run_id": "20200101-000001-a11ve0"})
    assert store.run("20200101-000000-dead00")["status"] == "interrupted"
    assert list(store.runs()["status"]) == ["running", "interrupted"]
    # Filters and limits see the status users see (provtask runs --status interrupted).
    assert list(store.runs(status="interrupted")["run_id"]) == ["20200101-000000-dead00"]
    assert list(store.runs(status="running")["run_id"]) == ["20200101-000001-a11ve0"]
    assert list(store.runs(status="interrupted", limit=1)["run_id"]) == ["20200101-000000-dead00"]


def test_each_attempt_records_what_it_printed(client, store_dir):
    @task
    def chatty(n: int) -> int:
        import sys

        print(f"computing {n}")
        print("x" * 100_000)  # more than is kept: only the tail survives
        print(f"warning from {n}", file=sys.stderr)
        return n

    with DAG("chatty") as dag:
        chatty.map([1, 2])
    result = dag.run(client=client, store=store_dir)
    attempts = Store(store_dir).attempts(result.run_id).set_index("task_id")
    for n in (1, 2):
        row = attempts.loc[f"chatty[{n - 1}]"]
        assert row.stderr == f"warning from {n}\n"
        assert row.stdout.startswith("[… ") and "earlier characters not kept" in row.stdout
        assert row.stdout.endswith("x" * 1000 + "\n") and len(row.stdout) < 70_000
    assert "computing" not in attempts.loc["chatty[0]", "stdout"]  # cut with the head


def test_blocking_run_can_draw_a_progress_bar(client, store_dir, load_dag, capsys):
    result = load_dag("edge_cases", "slow").run(
        client=client, store=store_dir, params={"durations": [0.1] * 3}, progress=True
    )
    assert result.ok
    drawn = capsys.readouterr().err  # not a terminal: plain lines on stderr
    assert f"{result.run_id} 3/3 done, 0 running, 0 failed, 0 queued" in drawn


def test_a_run_on_the_callers_client_leaves_no_plugin_behind(client, store_dir, load_dag):
    """The run's worker and scheduler plugins are removed from a client the caller owns."""

    def plugins(dask_scheduler) -> list[str]:
        return [*dask_scheduler.plugins, *dask_scheduler.worker_plugins]

    result = load_dag("small_elements").run(params={"n": 10}, client=client, store=store_dir)
    assert result.ok, result.errors
    assert not [name for name in client.run_on_scheduler(plugins) if result.run_id in name]


def test_the_scheduler_keeps_no_copy_of_a_runs_reports(client, store_dir, load_dag):
    """A long-lived scheduler would otherwise hold the last 1,000 report messages of every
    run for as long as it lives."""
    result = load_dag("small_elements").run(params={"n": 300}, client=client, store=store_dir)
    assert result.ok, result.errors
    assert client.get_events(f"provtask-{result.run_id}") == ()
