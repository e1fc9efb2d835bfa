"""Batching small tasks: several attempts in one Dask task (issue 7).

Each task costs the Dask scheduler about a millisecond whatever it does, so tasks that take
less than that are mostly overhead. Once a task name has shown that its tasks (map elements,
or calls of it in a loop) are small, the engine sends its ready ones in batches: one Dask
task runs the attempts one after the other on a worker, each measured, stored and reported
on its own (failures stay isolated), and returns their values as a tuple. A downstream task reads
element ``i`` of that tuple: the engine marks the argument with a :class:`Picked`, turns it
into a *batch pick* (where in the arguments, which index), and the worker replaces it
before the call.

Long or unknown tasks are never batched, so they never wait behind a batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..templates import Path, substitute

if TYPE_CHECKING:
    from .instance import Instance

SMALL_TASK = 0.02  # s: elements whose code takes less than this on average are batched
BATCH_WORK = 0.1  # s of work per batch at most
MAX_BATCH = 250  # attempts per batch at most
OBSERVED = 2  # durations seen before a task name counts as small
HOLD = 0.2  # s the other elements of a new task name wait for the first ones' durations
_WEIGHT = 0.2  # of a new duration in the running mean


class Durations:
    """Running mean of the code duration of each task name, from attempt reports."""

    def __init__(self) -> None:
        self.mean: dict[str, float] = {}
        self.seen: dict[str, int] = {}

    def observe(self, name: str, seconds: float) -> None:
        seen = self.seen.get(name, 0)
        self.seen[name] = seen + 1
        mean = self.mean.get(name, seconds)
        self.mean[name] = seconds if seen == 0 else mean + _WEIGHT * (seconds - mean)

    def known(self, name: str) -> bool:
        return self.seen.get(name, 0) >= OBSERVED

    def batch_size(self, name: str, ready: int, slots: int) -> int:
        """How many ready elements of ``name`` go in one batch (1: no batching). Batches
        hold at most ``BATCH_WORK`` of work, and there are enough of them to keep every
        worker slot busy twice over."""
        if self.seen.get(name, 0) < OBSERVED or self.mean[name] >= SMALL_TASK:
            return 1
        by_work = int(BATCH_WORK / max(self.mean[name], 1e-6))
        spread = math.ceil(ready / (2 * max(slots, 1)))
        return max(1, min(MAX_BATCH, by_work, spread))


class Probing:
    """The first elements of a task name run alone; until their durations are known (at
    most ``HOLD`` s after the first element was held back), its other ready elements wait,
    so that they can go in batches if the name turns out small. The first elements fill
    every worker slot, so waiting costs nothing when the name is not small."""

    def __init__(self, durations: Durations) -> None:
        self.durations = durations
        self.deadline: dict[str, float] = {}
        self.probes: dict[str, int] = {}  # first elements still to send alone
        self.held: dict[str, list[Any]] = {}

    def admit(self, ready: list[Any], slots: int, now: float) -> list[Any]:
        """The instances to submit now; the others are held."""
        admitted = []
        for inst in ready:
            name = inst.task.name
            if (
                not _may_wait(inst)
                or self.durations.known(name)
                or self.deadline.get(name, now + 1) <= now
            ):
                admitted.append(inst)
                continue
            left = self.probes.setdefault(name, self._probes(slots))
            if left > 0:
                self.probes[name] = left - 1
                admitted.append(inst)
            else:  # the wait starts with the first element held
                self.deadline.setdefault(name, now + HOLD)
                self.held.setdefault(name, []).append(inst)
        return admitted

    def first_out(self, ready: list[Any], slots: int) -> tuple[list[Any], list[Any]]:
        """``ready`` split in two: what goes out first (the probes of new task names, and
        every task that would not be held), and the other elements of new task names, which
        :meth:`admit` will hold. Keying the second part waits until the probes are out."""
        first, later = [], []
        room: dict[str, int] = {}
        for inst in ready:
            name = inst.task.name
            if not _may_wait(inst) or self.durations.known(name) or name in self.probes:
                first.append(inst)
                continue
            left = room.setdefault(name, self._probes(slots))
            if left > 0:
                room[name] = left - 1
                first.append(inst)
            else:
                later.append(inst)
        return first, later

    def release(self, now: float) -> list[Any]:
        """Held instances whose task name is now known, or that waited long enough."""
        released = []
        for name in list(self.held):
            if self.durations.known(name) or now >= self.deadline[name]:
                released += self.held.pop(name)
        return released

    @staticmethod
    def _probes(slots: int) -> int:
        """First elements of a new task name sent alone: two per worker slot."""
        return max(OBSERVED, 2 * slots)


def _may_wait(inst: Instance) -> bool:
    """Only first attempts of tasks that could be batched are held."""
    res = inst.task.resources
    return (
        inst.kind != "map"
        and inst.attempts.number == 0
        and inst.task.kind == "python"
        and res.walltime is None
        and not res.gpus
    )


@dataclass(frozen=True)
class Picked:
    """An upstream output that is element ``index`` of a batch's tuple of values."""

    future: Any
    index: int


def take_picks(row: tuple, marker: type = Picked) -> tuple[tuple, tuple[tuple[Path, int], ...]]:
    """``row`` with each ``marker`` (a :class:`Picked`, or a chain's ``Hop``) replaced by its
    future (None for a hop), and where they were with the index each reads."""
    picks: list[tuple[Path, int]] = []

    def replace(value: Any, path: Path | None) -> Any:
        assert path is not None
        picks.append((path, value.index))
        return getattr(value, "future", None)

    def is_marker(value: Any) -> bool:
        return isinstance(value, marker)

    taken = tuple(substitute(value, replace, is_marker, (i,)) for i, value in enumerate(row))
    return taken, tuple(picks)


def apply_picks(
    arguments: tuple, picks: tuple[tuple[Path, int], ...], source: tuple | list | None = None
) -> tuple:
    """On the worker: each batch's tuple of values replaced by the element a task reads
    (with ``source``: each place replaced by ``source[index]``, a chain's earlier values).

    Containers on the way are copied once (the batch's values are shared with other tasks
    of the worker) and keep their type."""
    root = list(arguments)
    copied = {id(root)}
    tuples: list[tuple[Any, Any]] = []  # (container, key) of tuples copied as lists
    for path, index in picks:
        container: Any = root
        for step in path[:-1]:
            child = container[step]
            if id(child) not in copied:
                if isinstance(child, tuple):
                    tuples.append((container, step))
                child = dict(child) if isinstance(child, dict) else list(child)
                container[step] = child
                copied.add(id(child))
            container = child
        container[path[-1]] = (container[path[-1]] if source is None else source)[index]
    for container, key in reversed(tuples):  # innermost first
        container[key] = tuple(container[key])
    return tuple(root)
