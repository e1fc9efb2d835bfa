"""Store ingest: attempts per second through the run's recorder and StoreWriter, until committed.

    python -m benchmarks.store_ingest [--attempts 100000] [--rounds 5] [--quick] [--json]

Each round opens a fresh store and records a run of one-attempt map elements through the
engine's ``RunRecorder``, with the calls the engine makes for each: the task known
(``add_tasks``), its first attempt submitted (``task_submitted``: inputs, cache key, the
attempt's row), the worker's report (``attempt_finished``: the output's artifact row and the
attempt's ~20 finished columns, built on the worker by ``report_columns.finished_report``) and
the task's final state (``task_state``); then waits until all of it is committed. The instances
and the workers' reports are made before the clock starts (the engine and the workers make
them). Two orders:

- short tasks: each report follows its submission (tasks that end within one commit window);
- all in flight: every submission comes before the first report (many long tasks in flight).

Prints attempts per second (end to end, until committed) and µs per attempt on the caller's side
(what the engine's thread pays to record an attempt); then, measured apart on the short-tasks
run, the parts: queueing with nothing shipped, ``marshal`` of the batch and its bytes, the
writer process's merging and grouping of it.
"""

from __future__ import annotations

import marshal
import tempfile
import time
from pathlib import Path
from typing import Any

from provtask import Store, task
from provtask.engine.instance import CacheState, Instance, Node
from provtask.engine.recorder import RunRecorder
from provtask.engine.report_columns import ENDED, OUTPUT_HASH, STARTED, finished_report
from provtask.states import TaskState
from provtask.store.artifacts import ArtifactMeta
from provtask.store.batch import BatchApplier
from provtask.store.writer import StoreWriter

from .common import Figures, parser, report, rounds_of

RUN = "20260101-000000-0b0b0b"


@task
def simulate(i: int) -> int:
    return i


def instances(n: int) -> list[tuple[Instance, dict[str, Any]]]:
    """The elements of one map as the engine has them when submitting, with their reports."""
    node = Instance(Node(seq=0, task_id="simulate", task=simulate, kind="map", args=(), kwargs={}))
    now = time.time()
    made = []
    for i in range(n):
        inst = Instance(
            Node(
                seq=i + 1,
                task_id=f"simulate[{i}]",
                task=simulate,
                kind="element",
                args=(i,),
                kwargs={},
                parent=node,
            ),
            caching=CacheState(
                inputs=[{"name": "i", "hash": f"{i:064x}", "repr": str(i)}],
                input_hash=f"{i + 1:064x}",
                key=f"{i + 2:064x}",
                outcome="miss",
            ),
        )
        data = i.to_bytes(8, "little")
        artifact = ArtifactMeta(
            f"{i + 3:064x}", len(data), "pickle", "builtins.int", str(i), None, data
        )
        measured = {  # what execute_attempt collects on the worker
            "key": f"simulate-{RUN}-{i + 1}.1",
            "started": now + 0.001,
            "label": None,
            "stdout": None,
            "stderr": None,
            "function_ended": now + 0.0015,
            "status": "success",
            "artifact": artifact,
            "output_hash": artifact.hash,
            "n_items": None,
            "ended": now + 0.002,
            "cpu_time": 0.0009,
            "peak_rss": 123_456_789,
            "worker": "tcp://127.0.0.1:40001",
            "hostname": "node-1",
            "pid": 4242,
            "node": "node-1",
            "batch_job_id": None,
        }
        worker_report = finished_report(measured)  # what the worker sends
        made.append((inst, worker_report))
    return made


def submit(recorder: RunRecorder, inst: Instance) -> None:
    """What the engine records when a task's first attempt goes out."""
    inst.attempts.number = 1
    inst.attempts.key = f"simulate-{RUN}-{inst.node.seq}.1"
    recorder.task_submitted(inst, "local")
    inst.state = TaskState.RUNNING


def finish(recorder: RunRecorder, inst: Instance, worker_report: dict[str, Any]) -> None:
    """What the engine records when the worker's report of a successful attempt arrives."""
    recorder.attempt_finished(inst, 1, worker_report)
    row = worker_report["row"]
    inst.attempts.started_at, inst.attempts.ended_at = row[STARTED], row[ENDED]
    inst.output_hash = row[OUTPUT_HASH]
    inst.state = TaskState.SUCCESS
    recorder.task_state(inst)


def record_run(recorder: RunRecorder, made: list[tuple[Instance, dict]], in_flight: bool) -> None:
    """Record a run of the instances: ``in_flight``: all submitted before the first report."""
    recorder.start_run({"dag_name": "bench", "params": {}, "started_at": time.time()})
    recorder.add_tasks([inst for inst, _ in made])
    if in_flight:
        for inst, _ in made:
            submit(recorder, inst)
        for inst, worker_report in made:
            finish(recorder, inst, worker_report)
    else:
        for inst, worker_report in made:
            submit(recorder, inst)
            finish(recorder, inst, worker_report)


def one_round(folder: Path, n: int, in_flight: bool) -> tuple[float, float]:
    """Attempts per second until committed, and µs per attempt on the caller's side."""
    made = instances(n)
    assert simulate.code_hash  # computed once per process, before the clock starts
    store = Store(folder)
    writer = store.writer()
    start = time.perf_counter()
    record_run(RunRecorder(writer, RUN), made, in_flight)
    queued = time.perf_counter() - start
    writer.close()
    elapsed = time.perf_counter() - start
    rows = store.conn.execute("SELECT count(*) FROM attempts WHERE status = 'success'").fetchone()
    assert rows[0] == n, rows
    store.close()
    return n / elapsed, queued / n * 1e6


def parts(folder: Path, n: int) -> dict[str, float]:
    """The driver's and the writer process's parts measured apart, in this process, µs per
    attempt: queueing the short-tasks run with nothing shipped, ``marshal`` of the queued
    batch (and its size), the writer's merging and grouping of it (``BatchApplier``)."""
    made = instances(n)
    store = Store(folder)
    writer = StoreWriter(store.conn, interval=3600, max_batch=1 << 30)  # ships at close
    start = time.perf_counter()
    record_run(RunRecorder(writer, RUN), made, in_flight=False)
    queued = time.perf_counter() - start
    operations = writer._ops  # what the next frame would carry (a peek at the queue)
    start = time.perf_counter()
    frame = marshal.dumps(operations, 4)
    dumped = time.perf_counter() - start
    batch = marshal.loads(frame)  # as the writer process reads it
    start = time.perf_counter()
    BatchApplier(store.conn).statements(batch, set())
    merged = time.perf_counter() - start
    writer.close()
    store.close()
    return {
        "µs per attempt queued, nothing shipped": queued / n * 1e6,
        "µs per attempt, marshal of the batch": dumped / n * 1e6,
        "bytes per attempt in the frame": len(frame) / n,
        "µs per attempt, writer's merging and grouping": merged / n * 1e6,
    }


def main() -> None:
    options = parser(__doc__, rounds=5)
    options.add_argument("--attempts", type=int, default=100_000)
    args = options.parse_args()
    n = 20_000 if args.quick else args.attempts
    orders = {False: "attempts/s, short tasks", True: "attempts/s, all in flight"}
    figures: Figures = {name: [] for name in orders.values()}
    caller = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_no in range(rounds_of(args)):
            for in_flight, name in orders.items():
                folder = Path(tmp) / f"store-{round_no}-{in_flight}"
                rate, cost = one_round(folder, n, in_flight)
                figures[name].append(rate)
                caller.append(cost)
            for name, value in parts(Path(tmp) / f"store-{round_no}-parts", n).items():
                figures.setdefault(name, []).append(value)
    figures["µs per attempt, caller's side"] = caller
    report(
        f"store ingest: {n} attempts through RunRecorder and StoreWriter", figures, {}, args.json
    )


if __name__ == "__main__":
    main()
