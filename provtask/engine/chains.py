"""Fusing linear chains of small tasks: several dependent attempts in one Dask task (issue 7).

A chain ``a → b → c`` of small tasks pays a round trip through the scheduler and the driver
per hop (about 10 ms), which dwarfs tasks of microseconds. When a task is sent and its only
consumer waits on nothing else, is small and runs on the same pool, the engine sends both
(and so on down the chain) as one *segment*: a Dask task that runs the attempts one after
the other on one worker, passing each value to the next. Every attempt is measured, stored
and reported on its own, as alone.

The driver keeps its bookkeeping unchanged: a *rider* (a member after the head) becomes
ready when its upstream's report arrives, goes through the cache lookup like any task, and
then *boards*: it is recorded as submitted and takes the report the worker already sent.
If a member fails, is lost or turns out cached, the members after it leave the chain and
are submitted on their own when they become ready; a rider that never ran costs no retry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..states import TaskState
from .batching import BATCH_WORK, SMALL_TASK, Durations

if TYPE_CHECKING:
    from .instance import Instance
    from .pools import Pool

MAX_CHAIN = 1000  # attempts per segment at most


@dataclass(frozen=True)
class Hop:
    """In a rider's arguments: the value of member ``index`` of its segment."""

    index: int


@dataclass(eq=False)
class Segment:
    """The members of one fused chain (head first) and the future of the last one's value."""

    members: list[Instance]
    key: str  # the Dask key of the segment's task
    pool: Pool
    future: Any = None  # until every member has boarded or left
    positions: dict[int, int] = field(default_factory=dict)  # by instance seq

    def __post_init__(self) -> None:
        self.positions = {inst.node.seq: i for i, inst in enumerate(self.members)}

    def is_last(self, inst: Instance) -> bool:
        return inst is self.members[-1]


class Chains:
    """The run's fused chains: which riders are still to board, and reports that came early."""

    def __init__(self, durations: Durations) -> None:
        self.durations = durations
        self.riders: dict[str, Instance] = {}  # by rider key, until it boards or leaves
        self.early: dict[str, dict[str, Any]] = {}  # reports of riders yet to board

    def riders_after(self, head: Instance, fits: Callable[[Instance], bool]) -> list[Instance]:
        """The members that can follow ``head`` in a segment: each the only consumer of the
        previous one, waiting on nothing else, small, and accepted by ``fits`` (same pool,
        plain Python task)."""
        riders: list[Instance] = []
        work = 0.0
        current = head
        while len(riders) < MAX_CHAIN - 1 and len(current.on_success) == 1:
            rider = current.on_success[0]
            if (
                rider.waiting != 1
                or rider.state is not TaskState.PENDING
                or rider.attempts.number
                or rider.kind == "map"
                or rider.attempts.chain is not None
                or not fits(rider)
            ):
                break
            mean = self._small_mean(rider.task.name)
            if mean is None or work + mean > BATCH_WORK:
                break
            riders.append(rider)
            work += mean
            current = rider
        return riders

    def _small_mean(self, name: str) -> float | None:
        if not self.durations.known(name):
            return None
        mean = self.durations.mean[name]
        return mean if mean < SMALL_TASK else None

    def start(self, segment: Segment) -> None:
        """The segment was sent: its riders wait to board."""
        for inst in segment.members:
            inst.attempts.chain = segment
        for inst in segment.members[1:]:
            self.riders[rider_key(inst, segment)] = inst

    def hold(self, report: dict[str, Any]) -> None:
        """Keep the report of a rider whose upstream's report is still being processed."""
        if report["key"] in self.riders:
            self.early[report["key"]] = report

    def board(self, inst: Instance) -> tuple[str, dict[str, Any] | None]:
        """A rider is submitted: its key, and its report if it came already."""
        key = rider_key(inst, inst.attempts.chain)
        del self.riders[key]
        return key, self.early.pop(key, None)

    def leave(self, inst: Instance) -> None:
        """``inst`` and the members after it leave its chain: they are submitted alone when
        ready; their reports from the segment, if any, are ignored."""
        segment = inst.attempts.chain
        if segment is None:
            return
        segment.future = None  # no member boards any more: the members hold what they need
        for member in segment.members[segment.positions[inst.node.seq] :]:
            key = rider_key(member, segment)
            self.riders.pop(key, None)
            self.early.pop(key, None)
            member.attempts.chain = None


def rider_key(inst: Instance, segment: Segment) -> str:
    """A rider's attempt key: distinct from the key it gets if it leaves the chain, so a late
    report from the segment can never pass for that attempt's."""
    return f"{inst.task.name}-{segment.key}-{inst.node.seq}.1"
