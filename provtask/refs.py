"""References inside task arguments: a task's future output (:class:`Ref`), the outputs of a
``.map`` (:class:`MapRef`), and a DAG parameter (:class:`ParamRef`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import DAGError

if TYPE_CHECKING:
    from .dag import DAG


@dataclass(frozen=True)
class Ref:
    """The future output of one DAG node, used as an argument of other task calls."""

    dag: DAG = field(repr=False, compare=False)
    node_id: str

    def __rshift__(self, other: Ref | list[Ref]) -> Ref | list[Ref]:
        for target in other if isinstance(other, list) else [other]:
            self.dag.order(self, target)
        return other

    def __rrshift__(self, other: list[Ref]) -> Ref:
        for source in other:
            self.dag.order(source, self)
        return self

    def result(self) -> Any:
        """Not a future: say how to get the value (jobqueue_features users call this)."""
        raise DAGError(
            f"the output of {self.node_id!r} is not computed yet: task calls build a DAG, "
            "which runs afterwards. Pass it to another task, or return it from the function "
            "(provtask.compat.jobqueue_features.on_cluster fills in returned outputs), or read "
            "it from RunResult after dag.run()."
        )

    def __iter__(self) -> Iterator[Any]:
        raise DAGError(
            f"cannot iterate over the output of {self.node_id!r} while the DAG is being built; "
            "its value exists only at run time. Use some_task.map(...) to fan out over it."
        )

    def __bool__(self) -> bool:
        raise DAGError(
            f"the output of {self.node_id!r} has no truth value while the DAG is being built; "
            "decide inside a task instead."
        )


@dataclass(frozen=True)
class MapRef(Ref):
    """The outputs of a ``.map`` fan-out: a list downstream, element-wise for another ``.map``."""


@dataclass(frozen=True)
class ParamRef:
    """A DAG parameter, resolved when the run starts (CLI ``--param name=value``)."""

    name: str
