"""One task of a run, as the engine tracks it: what to run, and how its attempts went."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..states import TaskState
from ..tasks import TaskDef

if TYPE_CHECKING:
    from distributed import Future

    from .chains import Segment


@dataclass(eq=False)
class Instance:
    """One task of a run: a DAG call, a ``.map`` node, or one element of a map."""

    seq: int
    task_id: str
    task: TaskDef
    kind: str  # "call" | "map" | "element"
    args: tuple
    kwargs: dict
    parent: Instance | None = None
    picks: tuple[tuple[int, int], ...] = ()
    state: TaskState = TaskState.PENDING
    waiting: int = 0  # prerequisites not yet satisfied
    on_success: list[Instance] = field(default_factory=list)
    on_expand: list[Instance] = field(default_factory=list)  # maps chained element-wise
    children: list[Instance] = field(default_factory=list)
    unfinished_children: int = 0
    attempt: int = 0
    free_attempts: int = 0  # attempts lost with a batch through no fault of their own
    future: Future | None = None  # of the attempt in flight, or of the value on a worker
    batch_index: int | None = None  # the future is a batch's: this attempt's place in it
    chain: Segment | None = None  # the fused chain this task runs in, if any
    key: str | None = None
    output_hash: str | None = None
    n_items: int | None = None
    error: str | None = None
    started_at: float | None = None  # of the attempt that decided the state
    ended_at: float | None = None
    inputs: list[dict[str, Any]] | None = None  # described when the task is first ready
    input_hash: str | None = None  # None when an argument has no stable hash
    cache_key: str | None = None
    cache: str | None = None  # hit | miss | off | refresh | uncacheable
    cache_note: str | None = None
    loaders: dict[int, Future] = field(default_factory=dict)  # a cached output's futures, by client

    @property
    def counted(self) -> bool:
        """Map nodes are containers; progress counts only what actually runs."""
        return self.kind != "map"
