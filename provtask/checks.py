"""What can be known about a DAG before anything runs: structure, MPI support, picklable and
hashable constants, and that every task fits its partition."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import cloudpickle

from .errors import DAGError, UnhashableValue
from .hashing import value_hash
from .mpi.check import check_mpi_task
from .refs import ParamRef, Ref
from .templates import has_refs

if TYPE_CHECKING:
    from .clusters.config import ClustersConfig
    from .dag import DAG

_ALWAYS_PICKLABLE = (type(None), bool, int, float, complex, str, bytes)


def check_runnable(dag: DAG, clusters: ClustersConfig | None = None) -> None:
    """Raise :class:`DAGError` (or a ``ResourceError``) for what would fail once running."""
    dag.validate()
    for node_id, data in dag.graph.nodes(data=True):
        task = data["task"]
        partition = None
        if clusters is not None:
            partition = clusters.partition_for(task.resources.partition, node_id)
            partition.check_fits(node_id, task.resources)
            for cause, changes in task.escalation.by_cause:  # partitions a retry may move to
                for change in changes:
                    if change.field == "partition":
                        clusters.partition_for(change.amount, f"{node_id} (on {cause})")
        if task.kind == "mpi":
            check_mpi_task(node_id, task, partition)
        arguments = {**dict(enumerate(data["args"])), **data["kwargs"]}
        for name, value in arguments.items():
            _check_picklable(node_id, name, value)
    check_cacheable(dag)


def _check_picklable(node_id: str, name: Any, value: Any) -> None:
    if type(value) in _ALWAYS_PICKLABLE or isinstance(value, Ref | ParamRef):
        return
    if has_refs(value):  # a container of references: check the constants beside them
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            _check_picklable(node_id, f"{name}[{key!r}]", item)
        return
    try:
        cloudpickle.dumps(value)
    except Exception as exc:
        label = f"argument {name}" if isinstance(name, int) else f"argument {name!r}"
        raise DAGError(
            f"task {node_id!r}: {label} cannot be sent to a worker ({type(exc).__name__}: "
            f"{exc}); pass something picklable (a path, numbers, a dict) and create the object "
            "inside the task"
        ) from None


def check_cacheable(dag: DAG) -> None:
    """Compute every task's code identity, and refuse constant arguments with no stable hash
    of tasks that insist on caching (``cache=True``)."""
    for node_id, data in dag.graph.nodes(data=True):
        task = data["task"]
        task.code_identity  # noqa: B018 - computed now, in the caller's thread
        if task.cache.enabled is not True or task.cache.key is not None:
            continue
        names = list(task.signature.parameters)
        arguments = {
            **{names[i] if i < len(names) else f"args[{i}]": v for i, v in enumerate(data["args"])},
            **data["kwargs"],
        }
        for name, value in arguments.items():
            if has_refs(value):
                continue  # task outputs and params are identified at run time
            try:
                value_hash(value)
            except UnhashableValue as exc:
                exc.argument = name
                raise DAGError(f"task {node_id!r} has cache=True, but {exc}") from None


__all__ = ["check_cacheable", "check_runnable"]
