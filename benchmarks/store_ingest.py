"""Store ingest: attempt rows per second through the run's StoreWriter, as a run writes them.

    python -m benchmarks.store_ingest [--attempts 100000] [--rounds 5] [--quick] [--json]

Each round opens a fresh store and queues, per attempt, what the engine's recorder queues for
a task that runs once: the task's row, its "submitted" update (inputs, cache key), the
attempt's row, the worker's report (the attempt's ~20 finished columns) and the task's final
state; then waits until all of it is committed. Two orders:

- short tasks: each task's report follows its submission, so the writer merges the five
  operations into two inserts (what happens to tasks that end within one commit window);
- all in flight: every submission is queued before the first report, so the reports reach
  the database as UPDATE statements (a run with many long tasks in flight).

Prints attempts per second (end to end, until committed) and µs per queued operation on the
caller's side (what the engine's thread pays).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from provtask import Store
from provtask.store.writer import StoreWriter

from .common import Figures, parser, report, rounds_of

RUN = "20260101-000000-bench0"
RESOURCES = json.dumps({"cpus_per_task": 1, "memory": None, "partition": None, "retries": 0})


def queue_run(writer: StoreWriter, n: int, in_flight: bool) -> int:
    """Queue the rows of a run of ``n`` one-attempt tasks; returns the operations queued.

    ``in_flight``: every task is submitted before the first report arrives; else each task
    reports right after its submission (short tasks, in one commit window)."""
    now = time.time()
    writer.insert("runs", {"run_id": RUN, "dag_name": "bench", "status": "running"})
    if in_flight:
        for i in range(n):
            queue_submission(writer, i, now)
        for i in range(n):
            queue_report(writer, i, now)
    else:
        for i in range(n):
            queue_submission(writer, i, now)
            queue_report(writer, i, now)
    return 1 + 5 * n


def queue_submission(writer: StoreWriter, i: int, now: float) -> None:
    """What the recorder queues when task ``i`` is known and then submitted."""
    task_id = f"simulate[{i}]"
    writer.insert(
        "tasks",
        {
            "run_id": RUN,
            "task_id": task_id,
            "name": "simulate",
            "function": "bench:simulate",
            "kind": "element",
            "parent": "simulate",
            "code_hash": "c" * 64,
            "partition": None,
            "resources": RESOURCES,
            "cache_version": None,
            "state": "pending",
            "attempts": 0,
        },
    )
    writer.update(
        "tasks",
        {"run_id": RUN, "task_id": task_id},
        {
            "state": "running",
            "inputs": json.dumps([{"name": "i", "value": i}]),
            "input_hash": f"{i:064x}",
            "cache_key": f"{i:064x}",
            "cache": "miss",
            "cache_note": None,
            "ready_at": now,
            "attempts": 1,
        },
    )
    writer.insert(
        "attempts",
        {
            "run_id": RUN,
            "task_id": task_id,
            "attempt": 1,
            "key": f"simulate-{i}-1",
            "status": "running",
            "partition": "default",
            "resources": RESOURCES,
            "submitted_at": now,
        },
    )


def queue_report(writer: StoreWriter, i: int, now: float) -> None:
    """What the recorder queues when the worker's report of task ``i`` arrives."""
    task_id = f"simulate[{i}]"
    writer.update(
        "attempts",
        {"run_id": RUN, "task_id": task_id, "attempt": 1},
        {
            "status": "success",
            "started_at": now + 0.001,
            "ended_at": now + 0.002,
            "function_ended_at": now + 0.0015,
            "worker": "tcp://127.0.0.1:40001",
            "hostname": "node-1",
            "pid": 4242,
            "node": "node-1",
            "batch_job_id": None,
            "cpu_time": 0.0009,
            "peak_rss": 123_456_789,
            "exc_type": None,
            "exc_message": None,
            "traceback": None,
            "stdout": None,
            "stderr": None,
            "output_hash": f"{i:064x}",
            "n_items": None,
            "failure_cause": None,
        },
    )
    writer.update(
        "tasks",
        {"run_id": RUN, "task_id": task_id},
        {
            "state": "success",
            "output_hash": f"{i:064x}",
            "started_at": now + 0.001,
            "ended_at": now + 0.002,
        },
    )


def one_round(folder: Path, n: int, in_flight: bool) -> tuple[float, float]:
    """Attempts per second until committed, and µs per queued operation."""
    store = Store(folder)
    writer = store.writer()
    start = time.perf_counter()
    operations = queue_run(writer, n, in_flight)
    queued = time.perf_counter() - start
    writer.close()
    elapsed = time.perf_counter() - start
    rows = store.conn.execute("SELECT count(*) FROM attempts WHERE status = 'success'").fetchone()
    assert rows[0] == n, rows
    store.close()
    return n / elapsed, queued / operations * 1e6


def main() -> None:
    options = parser(__doc__, rounds=5)
    options.add_argument("--attempts", type=int, default=100_000)
    args = options.parse_args()
    n = 20_000 if args.quick else args.attempts
    figures: Figures = {"attempts/s, short tasks": [], "attempts/s, all in flight": []}
    queue_costs = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_no in range(rounds_of(args)):
            for in_flight, name in zip((False, True), figures, strict=True):
                folder = Path(tmp) / f"store-{round_no}-{in_flight}"
                rate, queue_cost = one_round(folder, n, in_flight)
                figures[name].append(rate)
                queue_costs.append(queue_cost)
    figures["µs per queued operation"] = queue_costs
    title = f"store ingest: {n} attempts (5 row operations each) through StoreWriter"
    report(title, figures, {}, args.json)


if __name__ == "__main__":
    main()
