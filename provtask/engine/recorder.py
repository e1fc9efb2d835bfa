"""Turns what the engine observes into store rows (the engine never writes SQL itself)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from ..states import AttemptStatus, RunStatus, TaskState
from ..store.batch import encode_json
from ..store.writer import StoreWriter
from .instance import Instance

if TYPE_CHECKING:
    from ..store.cache_lookup import Source


_INPUTS = ("inputs",)  # the JSON column of a keyed task


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
                self.writer.insert(
                    "code",
                    {
                        "code_hash": task.code_hash,
                        "components": json.dumps(identity.components),
                        "sources": json.dumps(identity.sources),
                    },
                    ignore=True,
                )
            self.writer.insert(
                "tasks",
                {
                    "run_id": self.run_id,
                    "task_id": inst.task_id,
                    "name": task.name,
                    "function": task.function,
                    "kind": inst.kind,
                    "parent": inst.node.parent.task_id if inst.node.parent else None,
                    "code_hash": task.code_hash,
                    "partition": task.resources.partition,
                    "resources": task.resources_json,
                    "cache_version": task.cache.version,
                    "state": inst.state.value,
                    "attempts": 0,
                },
            )

    def add_edges(self, edges: list[tuple[str, str, str]]) -> None:
        for source, target, kind in edges:
            self.writer.insert(
                "edges",
                {"run_id": self.run_id, "source": source, "target": target, "kind": kind},
                ignore=True,
            )

    def task_state(self, inst: Instance, **changes: Any) -> None:
        """Record the instance's current state, plus any extra columns."""
        changes["state"] = inst.state.value
        if inst.attempts.error is not None:
            changes["error"] = inst.attempts.error
        if inst.output_hash is not None:
            changes["output_hash"] = inst.output_hash
        if inst.attempts.ended_at is not None:
            changes["started_at"] = inst.attempts.started_at
            changes["ended_at"] = inst.attempts.ended_at
        self.writer.update("tasks", {"run_id": self.run_id, "task_id": inst.task_id}, changes)

    def task_submitted(
        self, inst: Instance, partition: str, submitted_at: float | None = None
    ) -> None:
        """The first attempt of a task goes out, with its inputs and cache key (see
        ``Cache.take_hits``). ``submitted_at``: when it was ready, if earlier than now (a
        fused chain's member, ready when its upstream ended on the worker)."""
        now = time.time() if submitted_at is None else submitted_at
        self.writer.update(
            "tasks",
            {"run_id": self.run_id, "task_id": inst.task_id},
            {
                "state": TaskState.RUNNING.value,
                **self._keyed(inst),
                "ready_at": now,
                "attempts": inst.attempts.number,
            },
            as_json=_INPUTS,
        )
        self._insert_attempt(inst, partition, now)

    def task_cached(self, inst: Instance, source: Source) -> None:
        """The task reuses the output of an earlier successful attempt and does not run."""
        self.writer.update(
            "tasks",
            {"run_id": self.run_id, "task_id": inst.task_id},
            {
                "state": TaskState.CACHED.value,
                **self._keyed(inst),
                "ready_at": time.time(),
                "output_hash": source.output_hash,
                "source_run": source.run_id,
                "source_task": source.task_id,
                "source_attempt": source.attempt,
            },
            as_json=_INPUTS,
        )

    @staticmethod
    def _keyed(inst: Instance) -> dict[str, Any]:
        return {
            "inputs": inst.caching.inputs,  # encoded by the writer process
            "input_hash": inst.caching.input_hash,
            "cache_key": inst.caching.key,
            "cache": inst.caching.outcome,
            "cache_note": inst.caching.note,
        }

    def attempt_submitted(self, inst: Instance, partition: str) -> None:
        """A retry goes out."""
        where = {"run_id": self.run_id, "task_id": inst.task_id}
        self.writer.update("tasks", where, {"attempts": inst.attempts.number})
        self._insert_attempt(inst, partition)

    def _insert_attempt(self, inst: Instance, partition: str, now: float | None = None) -> None:
        self.writer.insert(
            "attempts",
            {
                "run_id": self.run_id,
                "task_id": inst.task_id,
                "attempt": inst.attempts.number,
                "key": inst.attempts.key,
                "status": AttemptStatus.RUNNING.value,
                "partition": partition,
                "resources": inst.task.resources_json,
                "submitted_at": time.time() if now is None else now,
            },
        )

    def attempt_finished(self, inst: Instance, attempt: int, report: dict[str, Any]) -> None:
        """Record an attempt from the worker's report (see ``on_worker.execute_attempt``)."""
        artifact = report.get("artifact")
        for stored in [artifact, *report.get("streams", ())]:  # streams: an MPI program's
            if stored is not None:
                self.writer.insert(
                    "artifacts", {**stored, "created_at": report["ended"]}, ignore=True
                )
        self.writer.update(
            "attempts",
            {"run_id": self.run_id, "task_id": inst.task_id, "attempt": attempt},
            {
                "status": report["status"],
                "started_at": report.get("started"),
                "ended_at": report.get("ended"),
                "function_ended_at": report.get("function_ended"),
                "worker": report.get("worker"),
                "hostname": report.get("hostname"),
                "pid": report.get("pid"),
                "node": report.get("node"),
                "batch_job_id": report.get("batch_job_id"),
                "cpu_time": report.get("cpu_time"),
                "peak_rss": report.get("peak_rss"),
                "exc_type": report.get("exc_type"),
                "exc_message": report.get("exc_message"),
                "traceback": report.get("traceback"),
                "stdout": report.get("stdout"),
                "stderr": report.get("stderr"),
                "output_hash": artifact["hash"] if artifact else None,
                "n_items": report.get("n_items"),
                "failure_cause": report.get("failure_cause"),
                "gpu_ids": report.get("gpu_ids"),
                **report.get("mpi", {}),  # command, launcher, ranks, nodes, exit code, ...
            },
        )
        if report.get("label") is not None:
            key = {"run_id": self.run_id, "task_id": inst.task_id}
            self.writer.update("tasks", key, {"label": report["label"]})

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
