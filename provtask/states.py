"""States shared by the engine (which sets them) and the store (which records them)."""

from __future__ import annotations

from enum import Enum

_UNFINISHED = frozenset({"pending", "running"})  # values: read once per task and transition
_OK = frozenset({"success", "cached"})


class TaskState(str, Enum):
    """Lifecycle of one task (one DAG node, or one element of a ``.map``) in a run."""

    PENDING = "pending"  # waiting for upstream tasks
    RUNNING = "running"  # submitted to a cluster: queued on or executing in a worker
    SUCCESS = "success"
    FAILED = "failed"  # the last attempt failed and no retry is left
    UPSTREAM_FAILED = "upstream_failed"  # never ran: an upstream task failed
    CACHED = "cached"  # output reused from an earlier run
    CANCELLED = "cancelled"  # never finished: the run was interrupted

    @property
    def finished(self) -> bool:
        return self._value_ not in _UNFINISHED

    @property
    def ok(self) -> bool:
        return self._value_ in _OK


class AttemptStatus(str, Enum):
    """Outcome of one try of a task on a worker."""

    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"  # the task raised, or its result could not be stored
    LOST = "lost"  # the worker died or the cluster lost the task
    TIMEOUT = "timeout"  # ran past its walltime and was killed (MPI tasks)
    CANCELLED = "cancelled"  # the run was interrupted while this attempt was in flight


class RunStatus(str, Enum):
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"  # finished, with at least one failed task, or the engine failed
    INTERRUPTED = "interrupted"  # Ctrl-C, SIGTERM, cancel(), or the driver died (stale heartbeat)
