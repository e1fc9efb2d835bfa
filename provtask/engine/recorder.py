"""Turns what the engine observes into store rows (the engine never writes SQL itself)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from ..states import AttemptStatus, RunStatus, TaskState
from ..store.batch import encode_json
from ..store.writer import StoreWriter
from .instance import Instance
from .report_columns import ARTIFACT_COLUMNS, row_columns

if TYPE_CHECKING:
    from ..store.cache_lookup import Source


# Column names shared by every call of a site, so a batch ships them once (see batch.py).
_INPUTS = ("inputs",)  # the JSON column of a keyed task
_TASK_KEY = ("run_id", "task_id")
_ATTEMPT_KEY = ("run_id", "task_id", "attempt")
_CODE = ("code_hash", "components", "sources")
_TASK = (
    "run_id",
    "task_id",
    "name",
    "function",
    "kind",
    "parent",
    "code_hash",
    "partition",
    "resources",
    "cache_version",
    "state",
    "attempts",
)
_EDGE = ("run_id", "source", "target", "kind")
_KEYED = ("inputs", "input_hash", "cache_key", "cache", "cache_note")
_SUBMITTED = ("state", *_KEYED, "ready_at", "attempts")
_CACHED = (
    "state",
    *_KEYED,
    "ready_at",
    "output_hash",
    "source_run",
    "source_task",
    "source_attempt",
)
_ATTEMPT = (
    "run_id",
    "task_id",
    "attempt",
    "key",
    "status",
    "partition",
    "resources",
    "submitted_at",
)
_ATTEMPTS = ("attempts",)
# task_state's columns, by whether the error, the output and the times are known.
_STATE = {
    (error, output, ended): (
        "state",
        *(("error",) if error else ()),
        *(("output_hash",) if output else ()),
        *(("started_at", "ended_at") if ended else ()),
    )
    for error in (False, True)
    for output in (False, True)
    for ended in (False, True)
}
_LABEL = ("label",)


class RunRecorder:
    """Provenance of one run, queued on the run's store writer."""

    def __init__(self, writer: StoreWriter, run_id: str) -> None:
        self.writer = writer
        self.run_id = run_id
        self._code_hashes: set[str] = set()

    def start_run(self, row: dict[str, Any]) -> None:
        self.writer.insert(
            "runs",
            {
                **row,
                "run_id": self.run_id,
                "params": encode_json(row["params"]),
                "status": RunStatus.RUNNING.value,
                "heartbeat_at": row["started_at"],
            },
        )

    def heartbeat(self, n_tasks: int) -> None:
        self.writer.update(
            "runs", {"run_id": self.run_id}, {"heartbeat_at": time.time(), "n_tasks": n_tasks}
        )

    def finish_run(self, status: RunStatus, n_tasks: int, error: str | None = None) -> None:
        now = time.time()
        self.writer.update(
            "runs",
            {"run_id": self.run_id},
            {
                "status": status.value,
                "ended_at": now,
                "heartbeat_at": now,
                "n_tasks": n_tasks,
                "error": error,
            },
        )

    def add_tasks(self, instances: list[Instance]) -> None:
        for inst in instances:
            task = inst.task
            if task.code_hash not in self._code_hashes:
                self._code_hashes.add(task.code_hash)
                identity = task.code_identity
                code = (
                    task.code_hash,
                    json.dumps(identity.components),
                    json.dumps(identity.sources),
                )
                self.writer.insert_row("code", _CODE, code, ignore=True)
            parent = inst.node.parent
            row = (
                self.run_id,
                inst.task_id,
                task.name,
                task.function,
                inst.kind,
                parent.task_id if parent else None,
                task.code_hash,
                task.resources.partition,
                task.resources_json,
                task.cache.version,
                inst.state.value,
                0,
            )
            self.writer.insert_row("tasks", _TASK, row)

    def add_edges(self, edges: list[tuple[str, str, str]]) -> None:
        for source, target, kind in edges:
            self.writer.insert_row("edges", _EDGE, (self.run_id, source, target, kind), ignore=True)

    def task_state(self, inst: Instance) -> None:
        """Record the instance's current state, with its error, output and times if known."""
        attempts = inst.attempts
        error, output, ended = attempts.error, inst.output_hash, attempts.ended_at
        values: tuple = (inst.state.value,)
        if error is not None:
            values += (error,)
        if output is not None:
            values += (output,)
        if ended is not None:
            values += (attempts.started_at, ended)
        columns = _STATE[(error is not None, output is not None, ended is not None)]
        self.writer.update_row("tasks", columns, values, _TASK_KEY, (self.run_id, inst.task_id))

    def task_submitted(
        self, inst: Instance, partition: str, submitted_at: float | None = None
    ) -> None:
        """The first attempt of a task goes out, with its inputs and cache key (see
        ``Cache.take_hits``). ``submitted_at``: when it was ready, if earlier than now (a
        fused chain's member, ready when its upstream ended on the worker)."""
        now = time.time() if submitted_at is None else submitted_at
        values = (TaskState.RUNNING.value, *self._keyed(inst), now, inst.attempts.number)
        key = (self.run_id, inst.task_id)
        self.writer.update_row("tasks", _SUBMITTED, values, _TASK_KEY, key, as_json=_INPUTS)
        self._insert_attempt(inst, partition, now)

    def task_cached(self, inst: Instance, source: Source) -> None:
        """The task reuses the output of an earlier successful attempt and does not run."""
        values = (
            TaskState.CACHED.value,
            *self._keyed(inst),
            time.time(),
            source.output_hash,
            source.run_id,
            source.task_id,
            source.attempt,
        )
        key = (self.run_id, inst.task_id)
        self.writer.update_row("tasks", _CACHED, values, _TASK_KEY, key, as_json=_INPUTS)

    @staticmethod
    def _keyed(inst: Instance) -> tuple:
        """The values of ``_KEYED`` (the inputs are encoded by the writer process)."""
        caching = inst.caching
        return (caching.inputs, caching.input_hash, caching.key, caching.outcome, caching.note)

    def attempt_submitted(self, inst: Instance, partition: str) -> None:
        """A retry goes out."""
        key = (self.run_id, inst.task_id)
        self.writer.update_row("tasks", _ATTEMPTS, (inst.attempts.number,), _TASK_KEY, key)
        self._insert_attempt(inst, partition)

    def _insert_attempt(self, inst: Instance, partition: str, now: float | None = None) -> None:
        row = (
            self.run_id,
            inst.task_id,
            inst.attempts.number,
            inst.attempts.key,
            AttemptStatus.RUNNING.value,
            partition,
            inst.task.resources_json,
            time.time() if now is None else now,
        )
        self.writer.insert_row("attempts", _ATTEMPT, row)

    def attempt_finished(self, inst: Instance, attempt: int, report: dict[str, Any]) -> None:
        """Record an attempt from the worker's report: its rows, as the worker built them
        (see ``report_columns.finished_report``)."""
        writer = self.writer
        for artifact in report["artifacts"]:  # the output's, and an MPI program's streams
            writer.insert_row("artifacts", ARTIFACT_COLUMNS, artifact, ignore=True)
        row = report["row"]
        key = (self.run_id, inst.task_id, attempt)
        writer.update_row("attempts", row_columns(row), row, _ATTEMPT_KEY, key)
        if report["label"] is not None:
            key = (self.run_id, inst.task_id)
            writer.update_row("tasks", _LABEL, (report["label"],), _TASK_KEY, key)

    def attempt_ended_without_report(
        self,
        inst: Instance,
        status: AttemptStatus,
        exc_type: str | None,
        message: str,
        failure_cause: str | None = None,
        **known: Any,
    ) -> None:
        """An attempt lost with its worker, stopped at its walltime, or cancelled, so no
        worker report exists (``known``: columns the driver knows, e.g. ``started_at``)."""
        columns = {
            **known,
            "status": status.value,
            "ended_at": time.time(),
            "exc_type": exc_type,
            "exc_message": message,
            "failure_cause": failure_cause,
        }
        key = {"run_id": self.run_id, "task_id": inst.task_id, "attempt": inst.attempts.number}
        self.writer.update("attempts", key, columns)

    def worker_connected(
        self, report: dict[str, Any], partition: str, job_submitted_at: float | None
    ) -> None:
        self.writer.insert(
            "workers",
            {
                "run_id": self.run_id,
                "worker": report["worker"],
                "name": report["name"],
                "host": report["host"],
                "pid": report["pid"],
                "nthreads": report["nthreads"],
                "memory_limit": report["memory_limit"],
                "partition": partition,
                "node": report["node"],
                "batch_job_id": report["batch_job_id"],
                "job_submitted_at": job_submitted_at,
                "connected_at": report["time"],
            },
            ignore=True,
        )

    def worker_disconnected(self, worker: str, when: float) -> None:
        self.writer.update(
            "workers", {"run_id": self.run_id, "worker": worker}, {"disconnected_at": when}
        )

    def job_event(self, partition: str, name: str, **columns: Any) -> None:
        """A batch job was submitted, refused, found stuck, or ended (one row per name)."""
        key = {"run_id": self.run_id, "partition": partition, "name": name}
        self.writer.insert("jobs", {**key, **columns}, ignore=True)
        self.writer.update("jobs", key, columns)
