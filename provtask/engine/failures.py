"""Why attempts fail, whether they are retried, and what their retries ask for (escalating
retries, docs/restart.md).

Causes: ``oom`` (the task raised ``MemoryError``, or its worker was killed for its memory
use), ``timeout`` (past its walltime), ``node_failure`` (its worker or batch job was lost),
``job_walltime`` (its batch job reached its walltime: retried without using a retry),
``error`` (anything else the task raised).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ResourceError
from ..escalation import ESCALATION_OPTIONS
from ..states import TaskState

if TYPE_CHECKING:
    from ..clusters.config import ClustersConfig
    from ..tasks import TaskDef
    from .instance import Instance
    from .rungraph import RunGraph

LOST_GRACE = 1.0  # s a lost attempt waits for news that its worker ran out of memory
_OPTION = {cause: option for option, cause in ESCALATION_OPTIONS.items()}
_WHAT = {
    "oom": "ran out of memory",
    "timeout": "ran past its walltime",
    "node_failure": "lost its worker",
}


def reported_cause(status: str, failure_cause: str | None) -> str:
    """The cause of a failed attempt that the worker reported (its status and cause)."""
    if status == "timeout":  # an MPI task's own walltime
        return "timeout"
    return failure_cause or "error"


class LostWorkers:
    """Which departed workers the cluster saw run out of memory (the nanny killed them, or
    their last reported memory use was near the limit)."""

    def __init__(self) -> None:
        self.oom: dict[str, str] = {}  # worker address -> what the cluster saw
        self.exits: dict[str, str] = {}  # worker address -> how its process ended
        self.walltime: dict[str, str] = {}  # worker address -> how its job's walltime ended it

    def note(self, event: dict[str, Any]) -> None:
        """A ``worker-left``, ``worker-oom`` or ``worker-exit`` event of the run's plugins, or
        ``{"worker": ..., "job_walltime": how}`` for a worker whose job's walltime ended it."""
        if "oom" in event:
            self.oom[event["worker"]] = event["oom"]
        if "exit" in event:
            self.exits[event["worker"]] = event["exit"]
        if "job_walltime" in event:
            self.walltime[event["worker"]] = event["job_walltime"]

    def cause(self, exc: BaseException | None, waited: float) -> tuple[str, str] | None:
        """``(cause, explanation)`` of an attempt lost with its worker, or None while news
        of that worker may still be on its way. Every attempt lost with a worker killed
        for its memory use counts as oom: Dask cannot tell which of them was running."""
        last_worker = getattr(exc, "last_worker", None)  # of a KilledWorker
        worker = getattr(last_worker, "address", None)
        if worker in self.oom:
            return "oom", f"out of memory: {self.oom[worker]}"
        if worker in self.walltime:
            return "job_walltime", self.walltime[worker]
        if worker is not None and waited < LOST_GRACE:
            return None
        return "node_failure", self.exits.get(worker, "")


class Escalator:
    """Gives a retry the resources its task asks for after a failure of a given cause,
    within the limits of its partition."""

    def __init__(self, config: ClustersConfig | None) -> None:
        self.config = config
        # One copy per task and resources, kept for the run: pools cache by id(task).
        self.copies: dict[tuple[int, tuple], tuple[TaskDef, TaskDef]] = {}

    def retry_task(self, task: TaskDef, cause: str, label: str) -> TaskDef:
        """The task (with escalated resources) for the attempt after one that failed with
        ``cause``; :class:`ResourceError` when that would exceed the partition."""
        changes = task.escalation.escalate(task.resources, cause)
        if not changes:
            return task
        key = (id(task), tuple(sorted(changes.items())))
        if key not in self.copies:
            self.copies[key] = (task, task.options(id=task.node_id, **changes))
        escalated = self.copies[key][1]
        if self.config is not None:
            try:
                partition = self.config.partition_for(escalated.resources.partition, label)
                partition.check_fits(label, escalated.resources)
            except ResourceError as exc:
                option = _OPTION[cause]
                raise ResourceError(
                    f"it {_WHAT[cause]}, and escalating it by {option}="
                    f"{task.escalation.option(option)} goes past its partition: {exc}"
                ) from None
        return escalated


class Retries:
    """The retry policy: a failed attempt is retried with the resources its cause escalates
    to while the task has retries left, else the task fails."""

    def __init__(self, graph: RunGraph, escalator: Escalator) -> None:
        self.graph = graph
        self.escalator = escalator
        self.ready: list[Instance] = []  # retries to submit
        self._held: dict[str, list[Instance]] = {}  # retries waiting for a worker to be gone

    def attempt_failed(
        self, inst: Instance, error: str, cause: str, after: str | None = None
    ) -> None:
        """``after``: a worker being killed; the retry waits until it has left, or Dask could
        send the retry to it."""
        if inst.attempts.counted > inst.task.resources.retries:
            self.graph.fail(inst, TaskState.FAILED, error)
            return
        try:
            inst.task = self.escalator.retry_task(inst.task, cause, inst.task_id)
        except ResourceError as exc:
            self.graph.fail(inst, TaskState.FAILED, f"{error}; {exc}")
        else:
            (self._held.setdefault(after, []) if after else self.ready).append(inst)

    def worker_left(self, worker: str) -> None:
        self.ready.extend(self._held.pop(worker, []))

    def take(self) -> list[Instance]:
        """The retries to submit now (the list is handed over)."""
        ready, self.ready = self.ready, []
        return ready
