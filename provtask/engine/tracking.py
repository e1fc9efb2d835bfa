"""Attempts in flight: what runs where, what is overdue, what was lost on the way.

The dispatcher adds attempts; reports, walltime kills and lost futures take them out. The
tracker only notices; what a lost or overdue attempt means is the loop's business.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..clusters.pool import Pool
from .failures import LostWorkers
from .instance import Instance
from .walltime import Deadlines

REPORT_GRACE = 30.0  # s a finished future may wait for its report before it counts as lost


@dataclass
class Lost:
    """An attempt whose future ended without a report: how, and the likely cause."""

    key: str
    inst: Instance
    exception: BaseException | None
    what: str
    cause: str = "node_failure"
    why: str = ""


class InFlight:
    """Attempts submitted and not yet accounted for, by Dask key."""

    def __init__(self) -> None:
        self._attempts: dict[str, tuple[Instance, int, Pool]] = {}
        self._unreported_since: dict[str, float] = {}
        self._lost_since: dict[str, float] = {}  # lost attempts whose cause is not known yet
        self.deadlines = Deadlines()
        self.lost_workers = LostWorkers()

    def __contains__(self, key: str) -> bool:
        return key in self._attempts

    def __iter__(self) -> Iterator[tuple[Instance, int, Pool]]:
        return iter(list(self._attempts.values()))

    def add(self, key: str, inst: Instance, pool: Pool) -> None:
        """Attempt ``inst.attempts.number`` of ``inst`` went to ``pool`` as Dask key ``key``."""
        self._attempts[key] = (inst, inst.attempts.number, pool)
        pool.demand += pool.job_share(inst.task)

    def instance(self, key: str) -> Instance:
        return self._attempts[key][0]

    def forget(self, key: str) -> tuple[Instance, int]:
        """Take an attempt out of flight, and its share out of its pool's demand."""
        inst, attempt, pool = self._attempts.pop(key)
        self._unreported_since.pop(key, None)
        self._lost_since.pop(key, None)
        pool.demand = max(0.0, pool.demand - pool.job_share(inst.task))
        return inst, attempt

    def keys_in(self, pool: Pool) -> list[str]:
        return [key for key, (_, _, in_pool) in self._attempts.items() if in_pool is pool]

    def clear(self) -> None:
        self._attempts.clear()

    def started(self, report: dict[str, Any]) -> None:
        """An attempt with a walltime started: its deadline counts from now."""
        entry = self._attempts.get(report["key"])
        if entry is not None:
            self.deadlines.start(report["key"], report["worker"], entry[0].task.resources.walltime)

    def overdue(self) -> Iterator[tuple[str, Instance, Pool, str, float]]:
        """(key, instance, pool, worker, start time) of attempts past their walltime."""
        for key, worker, started in self.deadlines.due():
            if key in self._attempts:  # else it ended in time
                inst, _, pool = self._attempts[key]
                yield key, inst, pool, worker, started

    def lost(self) -> list[Lost]:
        """Attempts whose future errored (worker lost) or that never reported."""
        now = time.monotonic()
        found = []
        for key, (inst, _, _) in list(self._attempts.items()):
            status = inst.attempts.future.status
            if status == "finished":
                since = self._unreported_since.setdefault(key, now)
                if now - since > REPORT_GRACE:
                    found.append(Lost(key, inst, None, "finished without a provenance report"))
            elif status in ("error", "cancelled", "lost"):
                exception = inst.attempts.future.exception() if status == "error" else None
                waited = now - self._lost_since.setdefault(key, now)
                cause = self.lost_workers.cause(exception, waited)
                if cause is not None:
                    what = f"the cluster reported the task as {status}"
                    found.append(Lost(key, inst, exception, what, *cause))
        return found
