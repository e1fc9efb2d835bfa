"""Placing tasks by the time left in their workers' batch jobs.

Each worker of a partition with a walltime is known with its job's end. A task with a
walltime goes only to workers whose job has that long left; when no connected worker has,
the task is held on the driver and counted in its pool's demand, so the pool starts a fresh
job for it. Workers within ``lifetime-margin`` of their job's end get no new tasks and retire
once idle (:func:`provtask.clusters.lifetime.pause_and_retire_idle`). A worker that leaves
at its job's end lost its attempts to the walltime (failure cause ``job_walltime``).
"""

from __future__ import annotations

import contextlib
import time
from datetime import datetime

from ..clusters.lifetime import pause_and_retire_idle
from ..clusters.pool import Pool
from ..tasks import TaskDef
from .instance import Instance

# A worker that left this close to its job's end (or later: SLURM enforces time limits
# every few tens of seconds) was ended by the walltime.
END_SLACK = 5.0


class JobEnds:
    """When each worker's batch job ends, and the tasks held for a worker with more time."""

    def __init__(self) -> None:
        self.ends: dict[str, tuple[Pool, float]] = {}  # worker address -> its pool, job end
        self.held: list[Instance] = []
        self._added: dict[int, tuple[Pool, float]] = {}  # demand the held tasks added, by pool
        self._memo: dict[tuple[int, float], tuple[str, ...] | None] = {}  # placements at ...
        self._memo_now = float("nan")  # ... this time (one round of submissions)

    def connected(self, worker: str, pool: Pool, end: float | None) -> None:
        if end is not None:
            self.ends[worker] = (pool, end)

    def left(self, worker: str, when: float) -> str | None:
        """A worker left; says how its job's walltime ended it, if it did."""
        _, end = self.ends.pop(worker, (None, None))
        if end is None or when < end - END_SLACK:
            return None
        at = datetime.fromtimestamp(end).strftime("%H:%M:%S")
        return f"its batch job reached its walltime at {at}"

    # -- placement ---------------------------------------------------------------------------
    @staticmethod
    def need(pool: Pool, task: TaskDef) -> float | None:
        """Seconds a task needs left in its job: its walltime, at most what a fresh job of
        the partition offers before its workers stop taking tasks."""
        part, walltime = pool.partition, task.resources.walltime
        if walltime is None or part is None or part.walltime is None:
            return None
        return min(walltime, part.walltime - (part.retire_margin or 0.0))

    def workers_for(self, pool: Pool, task: TaskDef, now: float) -> tuple[str, ...] | None:
        """The workers a task may go to: None for any (every worker of the pool has time
        enough, or none is connected yet), ``()`` for none now (hold it)."""
        need = self.need(pool, task)
        if need is None:
            return None
        if now != self._memo_now:
            self._memo, self._memo_now = {}, now
        key = (id(pool), need)
        if key not in self._memo:
            self._memo[key] = self._fitting(pool, need, now)
        return self._memo[key]

    def _fitting(self, pool: Pool, need: float, now: float) -> tuple[str, ...] | None:
        margin = pool.partition.retire_margin or 0.0  # type: ignore[union-attr]
        mine = [(worker, end - now) for worker, (p, end) in self.ends.items() if p is pool]
        fit = tuple(sorted(worker for worker, left in mine if left >= need and left > margin))
        return None if len(fit) == len(mine) else fit

    def hold(self, inst: Instance, pool: Pool) -> None:
        """Keep a task until a worker with time enough for it connects; its pool's demand
        counts it, and the jobs that are too short, so scaling starts a fresh job."""
        self.held.append(inst)
        _, added = self._added.get(id(pool), (pool, 0.0))
        more = pool.job_share(inst.task)
        if not added:  # the short jobs' idle room, once per pool
            processes = pool.partition.processes if pool.partition else 1
            short_jobs = sum(p is pool for p, _ in self.ends.values()) / processes
            more += max(0.0, short_jobs - pool.demand)
        pool.demand += more
        self._added[id(pool)] = (pool, added + more)

    def release(self) -> list[Instance]:
        """The held tasks, handed back to be placed again (their demand taken back)."""
        for pool, added in self._added.values():
            pool.demand = max(0.0, pool.demand - added)
        self._added = {}
        held, self.held = self.held, []
        return held

    # -- retiring ----------------------------------------------------------------------------
    def retire_expiring(self, now: float | None = None) -> None:
        """Workers within their partition's lifetime-margin of their job's end take no new
        tasks, and retire once they run none."""
        now = time.time() if now is None else now
        due: dict[int, tuple[Pool, list[str]]] = {}
        for worker, (pool, end) in self.ends.items():
            margin = pool.partition.retire_margin if pool.partition else None
            if margin is not None and end - now <= margin:
                due.setdefault(id(pool), (pool, []))[1].append(worker)
        for pool, workers in due.values():
            if pool.client.status == "running":
                with contextlib.suppress(OSError, TimeoutError):  # the scheduler is closing
                    pool.client.run_on_scheduler(pause_and_retire_idle, workers)
