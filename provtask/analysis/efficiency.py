"""Throughput efficiency: how a run's allocated worker time was spent.

Every worker slot (one thread of a worker) is *allocated* from the moment the worker joined
the run until it left. Each slot-second falls in exactly one category:

- ``compute``: a successful attempt was running the task's own code;
- ``provenance``: a successful attempt was serialising, hashing and storing its output;
- ``failed``: an attempt that failed (or was cancelled) was running;
- ``startup``: the worker had joined but had not started its first attempt;
- ``scheduling``: the slot was idle although a submitted task was waiting to start;
- ``idle``: the slot was idle and no task was ready (waiting for dependencies, or the
  tail of the run).

``efficiency = compute / allocated``. ``queue_wait`` (batch job submitted → worker joined)
lies before the allocation and is reported apart; it is empty where no batch system is
involved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from ..store import Store

CATEGORIES = ("compute", "provenance", "failed", "startup", "scheduling", "idle")


def efficiency(store: Store, run: str) -> pd.DataFrame:
    """One row per partition and one for the whole run (``partition == "all"``).

    Times are seconds; categories sum to ``allocated``, and the ``all`` row is the sum of
    the partition rows (its efficiency their pooled ``compute / allocated``).
    """
    import pandas as pd

    run_id = store.resolve_run(run)
    workers = _seconds(
        store.workers(run_id), ["job_submitted_at", "connected_at", "disconnected_at"]
    )
    attempts = _seconds(
        store.attempts(run_id), ["submitted_at", "started_at", "ended_at", "function_ended_at"]
    )
    rows = [
        _partition_row(
            str(name),
            workers[workers["partition"] == name],
            attempts[attempts["partition"] == name],
        )
        for name in sorted(workers["partition"].dropna().unique())
    ]
    rows.append(_total(rows))
    return pd.DataFrame(rows)


def _total(rows: list[dict]) -> dict:
    """The ``all`` row: the partition rows added up, so each column reads as their sum (an
    attempt waiting on one partition is never scheduling overhead of another's idle slots)."""
    total: dict = {"partition": "all"}
    for column in ("workers", "slots", "allocated", *CATEGORIES):
        total[column] = sum(row[column] for row in rows)
    allocated = total["allocated"]
    total["efficiency"] = total["compute"] / allocated if allocated > 0 else float("nan")
    waits = [row["queue_wait"] for row in rows if not np.isnan(row["queue_wait"])]
    total["queue_wait"] = float(sum(waits)) if waits else float("nan")
    return total


def _seconds(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Epoch seconds (float) for the given datetime columns, NaN where missing."""
    frame = frame.copy()
    for column in columns:
        frame[column] = frame[column].astype("int64").where(frame[column].notna()) / 1e9
    return frame


def _partition_row(name: str, workers: pd.DataFrame, attempts: pd.DataFrame) -> dict:
    slots = workers["nthreads"].fillna(1).to_numpy(float)
    joined = workers["connected_at"].to_numpy(float)
    left = workers["disconnected_at"].to_numpy(float)
    allocated = float(np.nansum((left - joined) * slots))

    ran = attempts.dropna(subset=["started_at", "ended_at"])
    success = ran[ran["status"] == "success"]
    function_end = success["function_ended_at"].fillna(success["ended_at"])
    compute = float((function_end - success["started_at"]).sum())
    provenance = float((success["ended_at"] - function_end).sum())
    failed_runs = ran[ran["status"] != "success"]
    failed = float((failed_runs["ended_at"] - failed_runs["started_at"]).sum())

    first_start = ran.groupby("worker")["started_at"].min()
    startup_end = np.fmin(workers["worker"].map(first_start).to_numpy(float), left)
    startup_end = np.where(np.isnan(startup_end), left, startup_end)

    timeline = _Timeline()
    timeline.add("slots", joined, left, slots)
    timeline.add("busy", ran["started_at"].to_numpy(float), ran["ended_at"].to_numpy(float))
    timeline.add("startup", joined, startup_end, slots)
    waiting = attempts.dropna(subset=["submitted_at"])
    timeline.add(
        "ready",
        waiting["submitted_at"].to_numpy(float),
        waiting["started_at"].fillna(waiting["ended_at"]).to_numpy(float),
    )
    startup, scheduling, idle = timeline.idle_split()
    return {
        "partition": name,
        "workers": len(workers),
        "slots": int(slots.sum()),
        "allocated": allocated,
        "compute": compute,
        "provenance": provenance,
        "failed": failed,
        "startup": startup,
        "scheduling": scheduling,
        "idle": idle,
        "efficiency": compute / allocated if allocated > 0 else float("nan"),
        "queue_wait": _queue_wait(workers),
    }


def _queue_wait(workers: pd.DataFrame) -> float:
    """Seconds from batch-job submission to worker connection, summed (NaN: no batch jobs)."""
    waits = workers["connected_at"] - workers["job_submitted_at"]
    return float(waits.sum()) if waits.notna().any() else float("nan")


class _Timeline:
    """Step functions of time (counts of slots, busy slots, ...) and their integrals."""

    def __init__(self) -> None:
        self.series: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def add(self, name: str, start: np.ndarray, end: np.ndarray, weight=None) -> None:
        weight = np.ones_like(start) if weight is None else np.asarray(weight, float)
        keep = ~(np.isnan(start) | np.isnan(end)) & (end > start)
        self.series[name] = (start[keep], end[keep], weight[keep])

    def idle_split(self) -> tuple[float, float, float]:
        """Integrals of startup, scheduling overhead and no-work idle over the timeline."""
        times = np.unique(np.concatenate([np.concatenate(s[:2]) for s in self.series.values()]))
        if len(times) < 2:
            return 0.0, 0.0, 0.0
        level = {name: self._levels(times, *series) for name, series in self.series.items()}
        width = np.diff(times)
        idle = np.clip(level["slots"] - level["busy"], 0, None)
        startup = np.minimum(level["startup"], idle)
        rest = idle - startup
        scheduling = np.minimum(rest, level["ready"])
        return (
            float((startup * width).sum()),
            float((scheduling * width).sum()),
            float(((rest - scheduling) * width).sum()),
        )

    @staticmethod
    def _levels(times: np.ndarray, start: np.ndarray, end: np.ndarray, weight: np.ndarray):
        """The series' value on each interval [times[k], times[k+1])."""
        delta = np.zeros(len(times))
        np.add.at(delta, np.searchsorted(times, start), weight)
        np.add.at(delta, np.searchsorted(times, end), -weight)
        return np.cumsum(delta)[:-1]
