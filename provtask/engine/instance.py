"""One task of a run, as the engine tracks it (slotted: a run holds one per task).

An :class:`Instance` is split by who may change what:

- its :class:`Node` (what to run) is fixed when the instance is made;
- its state and dependency counters belong to :class:`~provtask.engine.rungraph.RunGraph`;
- its :class:`Attempts` (the attempt in flight, and how the deciding one went) to dispatch
  and outcomes;
- its :class:`CacheState` (inputs, keys, hit or miss) to the cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ..states import TaskState
from ..tasks import TaskDef

if TYPE_CHECKING:
    from distributed import Future

    from .chains import Segment

Kind = Literal["call", "map", "element"]
CacheOutcome = Literal["hit", "kept", "miss", "off", "refresh", "uncacheable"]


@dataclass(frozen=True, eq=False, slots=True)
class Node:
    """What one task of a run is: a DAG call, a ``.map`` node, or one element of a map."""

    seq: int
    task_id: str
    task: TaskDef
    kind: Kind
    args: tuple
    kwargs: dict
    parent: Instance | None = None  # the map node of an element
    picks: tuple[tuple[int, int], ...] = ()  # (argument, index) an element takes from lists


@dataclass(eq=False, slots=True)
class Attempts:
    """A task's attempts: the one in flight, and the times and error of the deciding one."""

    number: int = 0  # of the latest attempt; 0 before the first
    uncounted: int = 0  # lost with a batch through no fault of their own: no retry used
    future: Future | None = None  # of the attempt in flight, or of the value on a worker
    batch_index: int | None = None  # the future is a batch's: this attempt's place in it
    chain: Segment | None = None  # the fused chain this task runs in, if any
    key: str | None = None  # Dask key of the latest attempt
    started_at: float | None = None
    ended_at: float | None = None
    error: str | None = None

    @property
    def counted(self) -> int:
        """Attempts that used up a retry."""
        return self.number - self.uncounted


@dataclass(eq=False, slots=True)
class CacheState:
    """What the cache knows of a task: its inputs, its key, and whether it was reused."""

    inputs: list[dict[str, Any]] | None = None  # described when the task is first ready
    input_hash: str | None = None  # None when an argument has no stable hash
    key: str | None = None
    outcome: CacheOutcome | None = None
    note: str | None = None
    loaders: dict[int, Future] = field(default_factory=dict)  # a reused output's, by client


@dataclass(eq=False, slots=True)
class Instance:
    """One task of a run: its fixed node, and the state the engine keeps of it."""

    node: Node
    state: TaskState = TaskState.PENDING
    waiting: int = 0  # prerequisites not yet satisfied
    on_success: list[Instance] = field(default_factory=list)
    on_expand: list[Instance] = field(default_factory=list)  # maps chained element-wise
    children: list[Instance] = field(default_factory=list)
    unfinished_children: int = 0
    output_hash: str | None = None
    n_items: int | None = None
    attempts: Attempts = field(default_factory=Attempts)
    caching: CacheState = field(default_factory=CacheState)
    # The task as the next or latest attempt runs it: the node's, or a copy with the
    # resources a retry for lack of memory or time escalated to (see failures.Retries).
    task: TaskDef = field(init=False)

    def __post_init__(self) -> None:
        self.task = self.node.task

    # Read everywhere, so forwarded (read-only).
    @property
    def task_id(self) -> str:
        return self.node.task_id

    @property
    def kind(self) -> Kind:
        return self.node.kind

    @property
    def counted(self) -> bool:
        """Map nodes are containers; progress counts only what actually runs."""
        return self.node.kind != "map"
