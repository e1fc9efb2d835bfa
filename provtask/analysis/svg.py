"""Inline SVG figures for the HTML report: the timeline, durations and efficiency.

Plain SVG text (no library, no script): every bar carries a ``<title>`` the browser shows
on hover. Sizes are in CSS pixels; the figures scale down with the page width.
"""

from __future__ import annotations

import math
from html import escape
from typing import TYPE_CHECKING

from .efficiency import CATEGORIES
from .timeline import FAILED_COLOUR, Timeline

if TYPE_CHECKING:
    import pandas as pd

LABEL_WIDTH = 200
PLOT_WIDTH = 880
MIN_BAR = 1.5  # px: a bar never gets thinner than this, however short the attempt
STARTUP_BAND = 56  # px at the left of the timeline for the cluster start-up (not to scale)
STARTUP_COLOUR = "#e5e7eb"
CATEGORY_COLOURS = {
    "compute": "#2ca02c",
    "provenance": "#1f77b4",
    "failed": FAILED_COLOUR,
    "startup": "#ff7f0e",
    "scheduling": "#9467bd",
    "idle": "#d9d9d9",
}


def timeline_svg(timeline: Timeline) -> str:
    n_lanes = max(len(timeline.lanes), 1)
    lane = 20 if n_lanes <= 40 else max(2.0, 800 / n_lanes)
    top, height = 26, n_lanes * lane
    span = timeline.span or 1.0
    band = STARTUP_BAND if timeline.startup > 0 else 0
    x_of = _scale(0.0, span, LABEL_WIDTH + band, LABEL_WIDTH + PLOT_WIDTH)
    parts = [_open(LABEL_WIDTH + PLOT_WIDTH + 10, top + height + 22, "timeline")]
    label_every = math.ceil(11 / lane)
    for i, name in enumerate(timeline.lanes):
        y = top + i * lane
        if i % 2:
            parts.append(_rect("lane", LABEL_WIDTH, y, PLOT_WIDTH, lane, "#f3f4f6"))
        if i % label_every == 0:
            text = _text(LABEL_WIDTH - 6, y + lane / 2 + 4, name, "end", "lane-label")
            address = escape(timeline.addresses[i])
            parts.append(text.replace("</text>", f"<title>{address}</title></text>"))
    if band:
        tip = f"cluster start-up: {timeline.startup:.1f} s before the first task started"
        parts.append(_rect("startup", LABEL_WIDTH, top, band - 4, height, STARTUP_COLOUR, tip))
        parts.append(
            _text(LABEL_WIDTH + band / 2 - 2, top + height / 2 + 4, "start-up", "middle", "note")
        )
        parts.append(
            _text(LABEL_WIDTH + band / 2 - 2, top - 8, f"−{timeline.startup:.1f}", "middle", "tick")
        )
    parts += _axis(x_of, 0.0, span, top, top + height, "s since the first task started")
    pad = min(2.0, lane / 6)
    for bar in timeline.bars.itertuples(index=False):
        x, w = x_of(bar.start), max(x_of(bar.end) - x_of(bar.start), MIN_BAR)
        y = top + bar.lane * lane + pad
        tip = f"{bar.label}: {bar.end - bar.start:.3f} s, {bar.status}"
        css = "bar" if bar.status == "success" else f"bar {bar.status}"
        colour = timeline.colour(bar.name, bar.status)
        parts.append(_rect(css, x, y, w, lane - 2 * pad, colour, tip, bar.opacity))
        if bar.status in ("failed", "retried"):  # a marker above, visible however thin
            fill = FAILED_COLOUR if bar.status == "failed" else "white"
            parts.append(
                f'<path class="{bar.status}-mark" d="M{x + w / 2:.1f} {y:.1f} l-4 '
                f'-{pad + 4:.1f} h8 z" fill="{fill}" stroke="{FAILED_COLOUR}"/>'
            )
    parts.append("</svg>")
    return "".join(parts)


def durations_svg(durations: pd.DataFrame, colours: dict[str, str]) -> str:
    """Per task name a strip of its durations (one tick each, up to 200), over a box of the
    quartiles, whiskers min–max and a line at the median."""
    row, top, right = 24, 26, 210
    height = top + row * max(len(durations), 1) + 22
    lo, hi = float(durations["min"].min()), float(durations["max"].max())
    log = lo > 0 and hi / lo > 50
    if log:
        x_of = _log_scale(lo, hi, LABEL_WIDTH, LABEL_WIDTH + PLOT_WIDTH - right)
    else:
        x_of = _scale(0.0, max(hi, 1e-6), LABEL_WIDTH, LABEL_WIDTH + PLOT_WIDTH - right)
    parts = [_open(LABEL_WIDTH + PLOT_WIDTH + 10, height, "durations")]
    bottom = height - 22
    parts += _axis(x_of, lo, hi, top, bottom, "seconds (log scale)" if log else "seconds", log)
    for i, stats in enumerate(durations.itertuples(index=False)):
        mid = top + i * row + row / 2
        colour = colours.get(stats.name, "#1f77b4")
        x_min, x_q1, x_med, x_q3, x_max = (
            x_of(v) for v in (stats.min, stats.q1, stats.median, stats.q3, stats.max)
        )
        tip = (
            f"{stats.name}: {stats.count} attempts, min {stats.min:.3g} s, "
            f"median {stats.median:.3g} s, max {stats.max:.3g} s"
        )
        box = _rect("box", x_q1, mid - 7, max(x_q3 - x_q1, MIN_BAR), 14, colour, tip, 0.25)
        parts += [
            _text(LABEL_WIDTH - 6, mid + 4, str(stats.name), "end", "lane-label"),
            f'<line x1="{x_min:.1f}" x2="{x_max:.1f}" y1="{mid:.1f}" y2="{mid:.1f}" '
            f'stroke="#555"/>',
            box,
            *(
                f'<line class="strip" x1="{x_of(v):.1f}" x2="{x_of(v):.1f}" '
                f'y1="{mid - 9:.1f}" y2="{mid + 9:.1f}" stroke="{colour}" stroke-opacity="0.6"/>'
                for v in stats.sample
            ),
            f'<line x1="{x_med:.1f}" x2="{x_med:.1f}" y1="{mid - 7:.1f}" y2="{mid + 7:.1f}" '
            f'stroke="#111" stroke-width="2"/>',
            _text(
                LABEL_WIDTH + PLOT_WIDTH - right + 10,
                mid + 4,
                f"n={stats.count}, median {_seconds(stats.median)}",
                "start",
                "note",
            ),
        ]
    parts.append("</svg>")
    return "".join(parts)


def efficiency_svg(table: pd.DataFrame) -> str:
    """One stacked bar per partition: the allocated slot time split by category."""
    row, top = 26, 8
    height = top + row * len(table) + 30
    parts = [_open(LABEL_WIDTH + PLOT_WIDTH + 10, height, "efficiency-bars")]
    for i, entry in enumerate(table.itertuples(index=False)):
        y = top + i * row
        parts.append(_text(LABEL_WIDTH - 6, y + 15, str(entry.partition), "end", "lane-label"))
        total = entry.allocated or 1.0
        x = float(LABEL_WIDTH)
        for category in CATEGORIES:
            seconds = float(getattr(entry, category))
            width = PLOT_WIDTH * seconds / total
            tip = f"{entry.partition} {category}: {seconds:.3f} s ({seconds / total:.1%})"
            parts.append(_rect(category, x, y, width, row - 6, CATEGORY_COLOURS[category], tip))
            x += width
    x = float(LABEL_WIDTH)
    for category in CATEGORIES:  # legend
        y = top + row * len(table) + 8
        parts.append(_rect("key", x, y, 12, 12, CATEGORY_COLOURS[category]))
        parts.append(_text(x + 16, y + 10, category, "start", "note"))
        x += 26 + 7.5 * len(category)
    parts.append("</svg>")
    return "".join(parts)


def _open(width: float, height: float, css: str) -> str:
    return (
        f'<svg class="{css}" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" '
        f'height="{height:.0f}" role="img">'
    )


def _rect(
    css: str,
    x: float,
    y: float,
    w: float,
    h: float,
    fill: str,
    title: str | None = None,
    opacity: float = 1.0,
) -> str:
    body = f"<title>{escape(title)}</title></rect>" if title else "</rect>"
    faded = f' fill-opacity="{opacity:g}"' if opacity < 1 else ""
    return (
        f'<rect class="{css}" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" '
        f'fill="{fill}"{faded}>{body}'
    )


def _text(x: float, y: float, text: str, anchor: str, css: str) -> str:
    return (
        f'<text class="{css}" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{escape(text)}</text>'
    )


def _axis(x_of, lo: float, hi: float, top: float, bottom: float, title: str, log=False):
    """Grid lines and tick labels above the plot, and the axis title below it."""
    parts = []
    for tick in _log_ticks(lo, hi) if log else _ticks(lo, hi):
        x = x_of(tick)
        parts.append(
            f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{top:.1f}" y2="{bottom:.1f}"/>'
        )
        parts.append(_text(x, top - 8, _seconds(tick, unit=False), "middle", "tick"))
    middle = LABEL_WIDTH + PLOT_WIDTH / 2
    parts.append(_text(middle, bottom + 16, title, "middle", "tick"))
    return parts


def _scale(lo: float, hi: float, left: float, right: float):
    return lambda v: left + (right - left) * (v - lo) / ((hi - lo) or 1.0)


def _log_scale(lo: float, hi: float, left: float, right: float):
    a, b = math.log10(lo), math.log10(hi)
    return lambda v: left + (right - left) * (math.log10(max(v, lo)) - a) / ((b - a) or 1.0)


def _ticks(lo: float, hi: float, count: int = 8) -> list[float]:
    """Round tick values (1, 2 or 5 × 10^k apart) covering [lo, hi]."""
    raw = (hi - lo) / count or 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step)
    return [k * step for k in range(first, math.floor(hi / step) + 1)]


def _log_ticks(lo: float, hi: float) -> list[float]:
    return [10.0**k for k in range(math.ceil(math.log10(lo)), math.floor(math.log10(hi)) + 1)]


def _seconds(value: float, unit: bool = True) -> str:
    text = f"{value:.3g}"
    return f"{text} s" if unit else text
