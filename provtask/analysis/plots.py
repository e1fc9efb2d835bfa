"""The report's plots as PNG files, drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ProvtaskError
from .efficiency import CATEGORIES
from .svg import CATEGORY_COLOURS
from .timeline import CANCELLED_COLOUR, FAILED_COLOUR, LOST_COLOUR, RETRIED_COLOUR

try:  # Figure objects draw with Agg without pyplot, so no display or backend setting is needed
    from matplotlib.colors import to_rgba
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
except ImportError:
    raise ProvtaskError(
        "PNG plots need matplotlib: pip install 'provtask[report]' "
        "(the HTML report does not need it)"
    ) from None

if TYPE_CHECKING:
    from .report_data import ReportData

DPI = 150


def write_pngs(data: ReportData, folder: Path) -> list[Path]:
    """timeline.png, durations.png (if any attempt succeeded) and efficiency.png."""
    figures = {"timeline": _timeline(data), "efficiency": _efficiency(data)}
    if not data.durations.empty:
        figures["durations"] = _durations(data)
    paths = []
    for name, figure in figures.items():
        path = folder / f"{name}.png"
        figure.savefig(path, dpi=DPI)
        paths.append(path)
    return paths


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def _timeline(data: ReportData) -> Figure:
    timeline = data.timeline
    lanes = max(len(timeline.lanes), 1)
    figure = _figure(10, min(2.0 + 0.32 * lanes, 14))
    axes = figure.add_subplot()
    bars = timeline.bars
    width = (bars["end"] - bars["start"]).clip(lower=timeline.span / 1500)
    colours = [
        to_rgba(timeline.colour(name, status), opacity)
        for name, status, opacity in zip(bars["name"], bars["status"], bars["opacity"], strict=True)
    ]
    axes.barh(
        bars["lane"],
        width,
        left=bars["start"],
        height=0.8,
        color=colours,
        edgecolor="white",
        linewidth=0.3,
    )
    failed = bars[bars["status"] == "failed"]
    axes.scatter(
        (failed["start"] + failed["end"]) / 2,
        failed["lane"] - 0.5,
        marker="v",
        color=FAILED_COLOUR,
        s=30,
        zorder=3,
    )
    axes.set_yticks(range(len(timeline.lanes)))
    axes.set_yticklabels(timeline.lanes if lanes <= 40 else [""] * lanes)
    axes.set_ylim(lanes - 0.5, -0.5 - (0.3 if len(failed) else 0))
    axes.set_xlim(0, timeline.span or 1.0)
    axes.set_xlabel(
        f"seconds since the first task started ({timeline.startup:.1f} s after the run)"
    )
    axes.set_ylabel("worker")
    axes.set_title(
        f"Run {data.run['run_id']} ({data.run['dag_name']}): {timeline.placed} attempts"
        + (" (aggregated)" if timeline.aggregated else ""),
        loc="left",
    )
    handles = [Patch(color=c, label=n) for n, c in list(timeline.colours.items())[:16]]
    handles += [
        Patch(color=FAILED_COLOUR, label="failed attempt, the task failed (▼)"),
        Patch(color=RETRIED_COLOUR, label="failed attempt, retried"),
    ]
    if bars["status"].isin(["lost", "timeout"]).any():
        handles.append(Patch(color=LOST_COLOUR, label="lost or stopped at its walltime"))
    if (bars["status"] == "cancelled").any():
        handles.append(Patch(color=CANCELLED_COLOUR, label="cancelled attempt"))
    figure.legend(handles=handles, loc="outside right upper", frameon=False)
    axes.grid(axis="x", linewidth=0.4, alpha=0.6)
    return figure


def _durations(data: ReportData) -> Figure:
    durations = data.durations
    figure = _figure(8, 1.2 + 0.45 * len(durations))
    axes = figure.add_subplot()
    stats = [
        {
            "label": f"{row.name} (n={row.count})",
            "whislo": row.min,
            "q1": row.q1,
            "med": row.median,
            "q3": row.q3,
            "whishi": row.max,
            "fliers": [],
        }
        for row in durations.itertuples(index=False)
    ]
    boxes = axes.bxp(stats, orientation="horizontal", patch_artist=True, showfliers=False)
    for box, name in zip(boxes["boxes"], durations["name"], strict=True):
        box.set_facecolor(data.timeline.colours.get(name, "#1f77b4"))
    for median in boxes["medians"]:
        median.set_color("black")
    low, high = durations["min"].min(), durations["max"].max()
    if low > 0 and high / low > 50:
        axes.set_xscale("log")
    axes.invert_yaxis()
    axes.set_xlabel("duration of successful attempts (s)")
    axes.set_title("Task durations", loc="left")
    axes.grid(axis="x", linewidth=0.4, alpha=0.6)
    return figure


def _efficiency(data: ReportData) -> Figure:
    table = data.efficiency
    figure = _figure(8, 1.4 + 0.5 * len(table))
    axes = figure.add_subplot()
    left = [0.0] * len(table)
    for category in CATEGORIES:
        values = list(table[category])
        axes.barh(
            table["partition"],
            values,
            left=left,
            color=CATEGORY_COLOURS[category],
            label=category,
            height=0.6,
        )
        left = [a + b for a, b in zip(left, values, strict=True)]
    for y, row in enumerate(table.itertuples(index=False)):
        axes.text(row.allocated, y, f"  {row.efficiency:.1%}", va="center")
    axes.set_xlim(0, 1.12 * max(table["allocated"].max(), 1e-9))  # room for the labels
    axes.invert_yaxis()
    axes.set_xlabel("slot-seconds (efficiency = compute / allocated)")
    axes.set_title("Where the allocated worker time went", loc="left")
    figure.legend(loc="outside right upper", frameon=False)
    return figure
