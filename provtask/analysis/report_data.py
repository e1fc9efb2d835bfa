"""What a run report shows, read from the store once: the HTML and PNG writers only draw it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .efficiency import efficiency
from .timeline import Timeline, build_timeline

if TYPE_CHECKING:
    import pandas as pd

    from ..store import Store

SLOWEST = 15  # attempts listed as the slowest
MAX_FAILED = 50  # failed tasks listed with their error; the rest are counted
STRIP = 200  # durations drawn one by one per task name


@dataclass
class ReportData:
    run: dict[str, Any]  # Store.run(): params decoded, task state counts in "states"
    wall_time: float  # seconds, up to now for a run still going
    n_attempts: int
    efficiency: pd.DataFrame  # provtask.analysis.efficiency
    timeline: Timeline
    durations: pd.DataFrame  # per task name: count, min, q1, median, q3, max (s)
    slowest: pd.DataFrame  # the longest attempts
    failed: pd.DataFrame  # failed tasks with their last attempt's error
    n_failed: int


def gather(store: Store, run: str) -> ReportData:
    import pandas as pd

    info = store.run(run)
    run_id = info["run_id"]
    tasks = store.tasks(run_id)
    tasks = tasks[tasks["kind"] != "map"]
    names = tasks.set_index("task_id")["name"]
    attempts = store.attempts(run_id)
    attempts["name"] = attempts["task_id"].map(names)
    ended = info["ended_at"] or time.time()
    start = pd.Timestamp(info["started_at"], unit="s", tz="UTC")
    failed = tasks[tasks["state"] == "failed"]
    return ReportData(
        run=info,
        wall_time=ended - info["started_at"],
        n_attempts=len(attempts),
        efficiency=efficiency(store, run_id),
        timeline=build_timeline(
            attempts, store.workers(run_id), start, pd.Timestamp(ended, unit="s", tz="UTC")
        ),
        durations=_durations(attempts),
        slowest=_slowest(attempts),
        failed=_failed(failed.head(MAX_FAILED), attempts),
        n_failed=len(failed),
    )


def _seconds(attempts: pd.DataFrame) -> pd.Series:
    return attempts["duration"].dt.total_seconds()


def _durations(attempts: pd.DataFrame) -> pd.DataFrame:
    """Quartiles of successful attempts' durations per task name, in order of appearance."""
    ok = attempts[attempts["status"] == "success"].assign(seconds=_seconds)
    grouped = ok.groupby("name", sort=False)["seconds"]
    return grouped.agg(
        count="count",
        min="min",
        q1=lambda s: s.quantile(0.25),
        median="median",
        q3=lambda s: s.quantile(0.75),
        max="max",
        sample=_sample,
    ).reset_index()


def _sample(seconds: pd.Series) -> list[float]:
    """At most ``STRIP`` durations for the strip plot: all, or evenly spaced quantiles."""
    if len(seconds) <= STRIP:
        return sorted(seconds)
    return list(seconds.quantile([i / (STRIP - 1) for i in range(STRIP)]))


def _slowest(attempts: pd.DataFrame) -> pd.DataFrame:
    ran = attempts.dropna(subset=["duration"]).assign(seconds=_seconds)
    columns = ["task_id", "name", "attempt", "status", "seconds", "hostname", "worker"]
    if "gpu_ids" in ran and ran["gpu_ids"].notna().any():  # the devices of GPU attempts
        columns.append("gpu_ids")
    return ran.nlargest(SLOWEST, "seconds")[columns]


def _failed(failed: pd.DataFrame, attempts: pd.DataFrame) -> pd.DataFrame:
    """Each failed task with the exception, traceback and worker of its last attempt."""
    last = attempts.sort_values("attempt").drop_duplicates("task_id", keep="last")
    columns = ["task_id", "exc_type", "exc_message", "traceback", "hostname", "worker"]
    return failed[["task_id", "label", "name", "attempts", "error"]].merge(
        last[columns], on="task_id", how="left"
    )
