"""Counts of task states during a run, as the engine publishes them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ..states import TaskState


@dataclass(frozen=True)
class Progress:
    """A snapshot of a run's tasks (map elements counted, map containers not)."""

    total: int = 0
    pending: int = 0
    running: int = 0
    success: int = 0
    cached: int = 0
    failed: int = 0
    upstream_failed: int = 0
    cancelled: int = 0
    jobs: str = ""  # batch jobs per partition, e.g. "gpu: 1 queued (Priority)"

    @classmethod
    def from_counts(cls, counts: Counter[TaskState], jobs: str = "") -> Progress:
        states = {s.value: counts.get(s, 0) for s in TaskState}
        return cls(total=sum(counts.values()), jobs=jobs, **states)

    @property
    def finished(self) -> int:
        return self.total - self.pending - self.running

    def summary(self) -> str:
        parts = [f"{self.success} done", f"{self.running} running", f"{self.failed} failed"]
        if self.upstream_failed:
            parts.append(f"{self.upstream_failed} upstream_failed")
        if self.cached:
            parts.append(f"{self.cached} cached")
        if self.cancelled:
            parts.append(f"{self.cancelled} cancelled")
        summary = ", ".join(parts)
        return f"{summary} | jobs {self.jobs}" if self.jobs else summary
