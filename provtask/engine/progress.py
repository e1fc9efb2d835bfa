"""Counts of task states during a run, as the engine publishes them or the store holds them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..states import TaskState

if TYPE_CHECKING:
    from ..store import Store


@dataclass(frozen=True)
class Progress:
    """A snapshot of a run's tasks (map elements counted, map containers not).

    ``running`` counts tasks that can be executing: submitted tasks up to the number of worker
    slots. The other submitted tasks, and the tasks not ready yet, are ``queued``."""

    total: int = 0
    pending: int = 0
    running: int = 0
    success: int = 0
    cached: int = 0
    failed: int = 0
    upstream_failed: int = 0
    cancelled: int = 0
    queued: int = 0
    jobs: str = ""  # batch jobs per partition, e.g. "gpu: 1 queued (Priority)"

    @classmethod
    def from_counts(
        cls, counts: Counter[TaskState], jobs: str = "", slots: int | None = None
    ) -> Progress:
        """From counts of task states, where ``running`` means submitted; ``slots`` (worker
        threads connected) caps what can actually run."""
        states = {s.value: counts.get(s, 0) for s in TaskState}
        submitted = states["running"]
        states["running"] = submitted if slots is None else min(submitted, slots)
        queued = states["pending"] + submitted - states["running"]
        return cls(total=sum(counts.values()), jobs=jobs, queued=queued, **states)

    @classmethod
    def from_store(cls, store: Store, run_id: str) -> Progress:
        """A run's progress as recorded in the store, for a watcher in another process."""
        rows = store.conn.execute(
            "SELECT state, count(*) FROM tasks WHERE run_id = ? AND kind != 'map' GROUP BY state",
            (run_id,),
        ).fetchall()
        (slots,) = store.conn.execute(
            "SELECT coalesce(sum(coalesce(nthreads, 1)), 0) FROM workers "
            "WHERE run_id = ? AND disconnected_at IS NULL",
            (run_id,),
        ).fetchone()
        jobs = store.conn.execute(
            "SELECT partition, state, count(*) FROM jobs WHERE run_id = ? AND ended_at IS NULL "
            "GROUP BY partition, state ORDER BY partition, state",
            (run_id,),
        ).fetchall()
        summary = "; ".join(f"{p}: {n} {(s or 'submitted').lower()}" for p, s, n in jobs)
        counts = Counter({TaskState(state): n for state, n in rows})
        return cls.from_counts(counts, summary, slots)

    @property
    def finished(self) -> int:
        return self.total - self.running - self.queued

    def summary(self, with_total: bool = True) -> str:
        """``12/40 done, 2 running, 1 failed, 25 queued | jobs cpu: 2 running``."""
        done = f"{self.finished}/{self.total} done" if with_total else f"{self.success} ok"
        parts = [done, f"{self.running} running", f"{self.failed} failed"]
        for name in ("upstream_failed", "cached", "cancelled"):
            if getattr(self, name):
                parts.append(f"{getattr(self, name)} {name}")
        parts.append(f"{self.queued} queued")
        summary = ", ".join(parts)
        return f"{summary} | jobs {self.jobs}" if self.jobs else summary
