"""Routing tasks to pools: a run has one pool per partition (and MPI shape) it uses.

With no clusters file every task goes to one pool (the embedded ``LocalCluster``, or a client
the caller passes). With one, each partition a task names gets its own pool, created the
first time a task of that partition is ready (pools themselves are in :mod:`provtask.clusters`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..clusters.factory import task_pool
from ..clusters.pool import Pool
from ..mpi.shape import pool_label
from ..tasks import TaskDef

if TYPE_CHECKING:
    from ..clusters.config import ClustersConfig, PartitionConfig


class Pools:
    """The pools of a run and the routing of tasks to them.

    ``on_new`` is called with each pool when it is created, before any task goes to it.
    """

    def __init__(
        self,
        default: Pool | None = None,
        config: ClustersConfig | None = None,
        on_new: Callable[[Pool], None] | None = None,
    ) -> None:
        if (default is None) == (config is None):
            raise ValueError("give either a default pool or a clusters config")
        self.config = config
        self.on_new = on_new
        self._by_name: dict[str, Pool] = {default.name: default} if default else {}
        self._by_task: dict[int, Pool] = {}

    def pool_for(self, task: TaskDef) -> Pool:
        pool = self._by_task.get(id(task))
        if pool is None:
            if self.config is None:
                pool = next(iter(self._by_name.values()))
            else:
                partition = self.config.partition_for(task.resources.partition, task.name)
                label = pool_label(partition, task)
                pool = self._by_name.get(label) or self._create(partition, task, label)
            self._by_task[id(task)] = pool
        return pool

    def _create(self, partition: PartitionConfig, task: TaskDef, label: str) -> Pool:
        pool = task_pool(partition, task, label)
        self._by_name[label] = pool
        if self.on_new is not None:
            self.on_new(pool)
        return pool

    def attach(self, on_new: Callable[[Pool], None]) -> None:
        """Call ``on_new`` for the pools that exist and for those created later."""
        self.on_new = on_new
        for pool in self.all():
            on_new(pool)

    def all(self) -> list[Pool]:
        return list(self._by_name.values())

    def job_summary(self) -> str:
        """Batch jobs of every partition, for the progress bar."""
        return "; ".join(f"{p.name}: {s}" for p in self.all() if (s := p.job_summary()))

    def close(self) -> list[Exception]:
        """Close every pool (no batch job may be left behind); returns what failed."""
        errors = []
        # Closing an in-process scheduler logs each step at INFO: not news to the user.
        logger = logging.getLogger("distributed")
        level = logger.level
        logger.setLevel(max(level, logging.ERROR))
        try:
            for pool in self.all():
                try:
                    pool.close()
                except Exception as exc:
                    errors.append(exc)
        finally:
            logger.setLevel(level)
        return errors
