"""The Gantt timeline of a run: one lane per worker, one bar per attempt.

Time runs from the first attempt's start; the cluster's start-up before it is kept as
``startup`` (drawn as a band, not to scale). Lanes are named and ordered by partition,
node and batch job. A failed attempt that was retried is ``retried``, apart from the
attempt that failed the task.

Both renderers (SVG in the HTML report, matplotlib for PNG) draw the same ``Timeline``. Past
``MAX_BARS`` attempts, successful ones are aggregated per lane into ``BINS`` time bins (a bar
per stretch of bins, coloured by the task name that used the most time in it, as opaque as the
lane was busy), so the report stays small for runs of any size; failed attempts are always
drawn one by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

MAX_BARS = 5000
BINS = 800
# Task colours; red and grey are kept for failed and cancelled attempts.
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5",
)  # fmt: skip
FAILED_COLOUR = "#d62728"
RETRIED_COLOUR = "#ff9896"  # a failed attempt with a retry after it
LOST_COLOUR = "#3b3b3b"  # lost with its worker, or stopped at its walltime
CANCELLED_COLOUR = "#7f7f7f"
STATUS_COLOURS = {
    "failed": FAILED_COLOUR,
    "retried": RETRIED_COLOUR,
    "lost": LOST_COLOUR,
    "timeout": LOST_COLOUR,
    "cancelled": CANCELLED_COLOUR,
}


@dataclass
class Timeline:
    """Bars in seconds since the first attempt started, placed on worker lanes."""

    lanes: list[str]  # lane labels, top to bottom
    addresses: list[str]  # the worker address of each lane
    bars: pd.DataFrame  # lane, start, end, name, status, count, opacity, label
    colours: dict[str, str]  # task name → colour
    span: float  # seconds from the run's start to its last event
    placed: int  # attempts drawn (one bar each unless aggregated)
    unplaced: int  # attempts with no worker or start time (lost before reporting)
    aggregated: bool
    startup: float = 0.0  # s from the run's start to its first attempt's (cluster start-up)

    def colour(self, name: str, status: str) -> str:
        return STATUS_COLOURS.get(status) or self.colours.get(name, PALETTE[0])


def build_timeline(
    attempts: pd.DataFrame, workers: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp
) -> Timeline:
    """Lay a run's attempts (``Store.attempts`` joined with task ``name``) out on lanes."""
    import pandas as pd

    lane_of = _lanes(workers, attempts)
    first = attempts["started_at"].min()
    origin = start if pd.isna(first) or first < start else first
    last_attempt = attempts.groupby("task_id")["attempt"].transform("max")
    status = (
        attempts["status"]
        .astype(str)
        .where((attempts["status"] != "failed") | (attempts["attempt"] == last_attempt), "retried")
    )
    placed = attempts.dropna(subset=["started_at", "ended_at", "worker"])
    bars = pd.DataFrame(
        {
            "lane": placed["worker"].map(lane_of).to_numpy(int),
            "start": (placed["started_at"] - origin).dt.total_seconds().to_numpy(),
            "end": (placed["ended_at"] - origin).dt.total_seconds().to_numpy(),
            "name": placed["name"].to_numpy(),
            "status": status.loc[placed.index].to_numpy(),
            "count": 1,
            "opacity": 1.0,
            "label": (
                placed["task_id"] + " (attempt " + placed["attempt"].astype(str) + ")"
            ).to_numpy(),
        }
    )
    span = max(float((end - origin).total_seconds()), float(bars["end"].max() if len(bars) else 0))
    names = list(dict.fromkeys(attempts["name"]))
    aggregated = len(bars) > MAX_BARS
    if aggregated:
        ok = bars["status"] == "success"
        bars = pd.concat([_aggregate(bars[ok], max(span, 1e-9)), bars[~ok]], ignore_index=True)
    return Timeline(
        lanes=[_lane_label(address, workers) for address in lane_of],
        addresses=list(lane_of),
        bars=bars,
        colours={name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)},
        span=span,
        placed=len(placed),
        unplaced=len(attempts) - len(placed),
        aggregated=aggregated,
        startup=float((origin - start).total_seconds()),
    )


def _lanes(workers: pd.DataFrame, attempts: pd.DataFrame) -> dict[str, int]:
    """Worker address → lane index: every worker of the run, grouped by partition, node and
    batch job, in order of arrival within a group."""
    known = workers.assign(arrival=range(len(workers))).sort_values(
        ["partition", "node", "batch_job_id", "arrival"], na_position="last", kind="stable"
    )
    addresses = list(dict.fromkeys([*known["worker"], *attempts["worker"].dropna()]))
    return {address: i for i, address in enumerate(addresses)}


def _lane_label(address: str, workers: pd.DataFrame) -> str:
    """A worker as a person reads it: partition · node · batch job (or process id)."""
    rows = workers[workers["worker"] == address]
    if rows.empty:
        return address
    row = rows.iloc[0]
    parts = [str(row[c]) for c in ("partition", "node") if isinstance(row[c], str)]
    if isinstance(row["batch_job_id"], str):
        parts.append(f"job {row['batch_job_id']}")
    elif row["pid"] == row["pid"]:  # not NaN
        parts.append(f"pid {int(row['pid'])}")
    return " · ".join(parts) or address


def _aggregate(bars: pd.DataFrame, span: float) -> pd.DataFrame:
    """Per lane and time bin, the task name that ran longest there; equal neighbours merged."""
    import pandas as pd

    width = span / BINS
    first = np.clip((bars["start"] // width).astype(int), 0, BINS - 1)
    last = np.clip(((bars["end"] - 1e-12) // width).astype(int), first, BINS - 1)
    # One row per (attempt, bin it touches), with the time it spent in that bin.
    repeat = (last - first + 1).to_numpy()
    rows = bars.loc[bars.index.repeat(repeat)].reset_index(drop=True)
    first_bin = np.repeat(first.to_numpy(), repeat)
    rows["bin"] = first_bin + _offsets(repeat)
    rows["count"] = (rows["bin"] == first_bin).astype(int)  # counted where it started
    rows["used"] = np.minimum(rows["end"], (rows["bin"] + 1) * width) - np.maximum(
        rows["start"], rows["bin"] * width
    )
    per_name = rows.groupby(["lane", "bin", "name"], sort=True).agg(
        used=("used", "sum"), count=("count", "sum")
    )
    per_bin = per_name.groupby(level=["lane", "bin"])
    top = per_name.loc[per_bin["used"].idxmax()].reset_index()
    top["count"] = per_bin["count"].sum().to_numpy()  # all names in the bin
    # How busy the lane was in the bin, in quarters (a multi-threaded worker can exceed 1).
    top["opacity"] = np.ceil(np.clip(per_bin["used"].sum().to_numpy() / width, 0, 1) * 4) / 4
    # A new bar starts where the lane, the name, the busyness or the run of bins changes.
    new = (
        (top["lane"] != top["lane"].shift())
        | (top["name"] != top["name"].shift())
        | (top["opacity"] != top["opacity"].shift())
        | (top["bin"] != top["bin"].shift() + 1)
    ).cumsum()
    merged = top.groupby(new).agg(
        lane=("lane", "first"),
        first=("bin", "first"),
        last=("bin", "last"),
        name=("name", "first"),
        count=("count", "sum"),
        opacity=("opacity", "first"),
    )
    return pd.DataFrame(
        {
            "lane": merged["lane"].to_numpy(int),
            "start": merged["first"].to_numpy() * width,
            "end": (merged["last"].to_numpy() + 1) * width,
            "name": merged["name"].to_numpy(),
            "status": "success",
            "count": merged["count"].to_numpy(),
            "opacity": merged["opacity"].to_numpy(),
            "label": [
                f"mostly {name}, busy {opacity:.0%}, attempts started: {count}"
                for name, count, opacity in zip(
                    merged["name"], merged["count"], merged["opacity"], strict=True
                )
            ],
        }
    )


def _offsets(repeat: np.ndarray) -> np.ndarray:
    """0, 1, …, r−1 for each r in ``repeat``, concatenated."""
    ends = np.cumsum(repeat)
    return np.arange(ends[-1] if len(ends) else 0) - np.repeat(ends - repeat, repeat)
