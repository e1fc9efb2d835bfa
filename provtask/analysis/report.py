"""Run reports: one self-contained HTML file, and the same plots as PNG files.

The HTML file embeds its CSS and draws its figures as inline SVG: it has no script and
loads nothing, so it opens offline and can be mailed or archived as it is. PNGs need
matplotlib (``pip install 'provtask[report]'``).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import StoreError
from . import timeline as layout
from .efficiency import CATEGORIES
from .report_data import MAX_FAILED, ReportData, gather
from .svg import STARTUP_COLOUR, durations_svg, efficiency_svg, timeline_svg

if TYPE_CHECKING:
    import pandas as pd

    from ..store import Store

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; color: #1f2328; margin: 24px auto;
       max-width: 1120px; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 30px; }
.status { padding: 2px 8px; border-radius: 4px; color: white; font-size: 13px; }
.status.success { background: #2ca02c; } .status.failed { background: #d62728; }
.status.running, .status.interrupted { background: #ff7f0e; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { text-align: left; padding: 3px 10px 3px 0; vertical-align: top;
         border-bottom: 1px solid #e5e7eb; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { font: 12px ui-monospace, monospace; } pre { white-space: pre-wrap; margin: 4px 0; }
svg { max-width: 100%; height: auto; display: block; }
svg text { font: 11px system-ui, sans-serif; fill: #1f2328; }
svg .tick { fill: #57606a; } svg .grid { stroke: #d0d7de; stroke-width: 0.5; }
svg .bar { stroke: white; stroke-width: 0.5; } svg .bar.failed { stroke: #7a1010; }
.legend span { display: inline-block; margin-right: 14px; }
.legend i { display: inline-block; width: 11px; height: 11px; margin-right: 4px;
            vertical-align: -1px; }
.note { color: #57606a; }
"""


def write_html(store: Store, run: str, path: str | os.PathLike) -> Path:
    """Write the HTML report of ``run`` to ``path``; returns the path written."""
    target = Path(path)
    text = render_html(gather(store, run))
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise StoreError(f"cannot write the report to {target}: {exc}") from exc
    return target


def write_pngs(store: Store, run: str, directory: str | os.PathLike) -> list[Path]:
    """Write the report's plots as PNG files into ``directory``; returns their paths."""
    from .plots import write_pngs as draw  # first: a missing matplotlib is reported at once

    folder = Path(directory)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return draw(gather(store, run), folder)
    except OSError as exc:
        raise StoreError(f"cannot write PNG files to {folder}: {exc}") from exc


def render_html(data: ReportData) -> str:
    info = data.run
    title = f"provtask run {info['run_id']} ({info['dag_name']})"
    sections = [
        f"<h1>Run <code>{escape(info['run_id'])}</code> of DAG "
        f"<code>{escape(info['dag_name'])}</code> "
        f'<span class="status {escape(info["status"])}">{escape(info["status"])}</span></h1>',
        _summary(data),
        "<h2>Efficiency</h2>",
        _efficiency(data.efficiency),
        "<h2>Timeline</h2>",
        _timeline(data),
        "<h2>Task durations</h2>",
        _durations(data),
        "<h2>Slowest attempts</h2>",
        _table(data.slowest, {"seconds": "{:.3f}"}),
        f"<h2>Failed tasks ({data.n_failed})</h2>",
        _failed(data),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )


def _summary(data: ReportData) -> str:
    info = data.run
    states = ", ".join(f"{count} {state}" for state, count in sorted(info["states"].items()))
    rows = {
        "params": f"<code>{escape(json.dumps(info['params']))}</code>",
        "tasks": escape(f"{info['n_tasks'] or 0} ({states or 'none'}), {data.n_attempts} attempts"),
        "started": escape(_utc(info["started_at"])),
        "ended": escape(_utc(info["ended_at"]) if info["ended_at"] else "not yet"),
        "wall time": f"{data.wall_time:.2f} s",
        "driver": escape(f"{info['user']}@{info['host']} (pid {info['pid']})"),
        "cluster": escape(info["cluster"] or "-"),
        "DAG file": escape(info["dag_file"] or "-"),
        "versions": escape(
            f"provtask {info['provtask_version']}, Python {info['python_version']}, "
            f"dask {info['dask_version']}, distributed {info['distributed_version']}"
        ),
    }
    if info.get("error"):
        rows["run error"] = f"<pre>{escape(info['error'])}</pre>"
    body = "".join(f"<tr><th>{key}</th><td>{value}</td></tr>" for key, value in rows.items())
    return f'<table class="summary">{body}</table>'


def _efficiency(table: pd.DataFrame) -> str:
    formats = {c: "{:.3f}" for c in ("allocated", *CATEGORIES)} | {"efficiency": "{:.1%}"}
    columns = ["partition", "workers", "slots", "allocated", *CATEGORIES, "efficiency"]
    note = (
        "<p class=\"note\">Slot-seconds of the workers' threads: <b>compute</b> the tasks' "
        "own code, <b>provenance</b> storing their outputs, <b>failed</b> attempts that "
        "failed, <b>startup</b> workers before their first task, <b>scheduling</b> idle while "
        "a submitted task waited, <b>idle</b> nothing ready. Efficiency = compute / allocated; "
        "the all row adds up the partitions. <code>provtask efficiency RUN --json</code> gives "
        "the numbers.</p>"
    )
    return _table(table[columns], formats) + efficiency_svg(table) + note


def _timeline(data: ReportData) -> str:
    timeline = data.timeline
    keys = [(name, colour) for name, colour in timeline.colours.items()]
    keys += [
        ("failed attempt, the task failed (▼)", layout.FAILED_COLOUR),
        ("failed attempt, retried (▽)", layout.RETRIED_COLOUR),
        ("lost or stopped at its walltime", layout.LOST_COLOUR),
        ("cancelled attempt", layout.CANCELLED_COLOUR),
    ]
    if timeline.startup > 0:
        keys.append((f"cluster start-up ({timeline.startup:.1f} s, not to scale)", STARTUP_COLOUR))
    legend = "".join(
        f'<span><i style="background:{colour}"></i>{escape(name)}</span>' for name, colour in keys
    )
    notes = [
        f"{len(timeline.lanes)} workers (partition · node · batch job or process id; hover "
        f"for the address), {timeline.placed} attempts. Time runs from the first task's start."
    ]
    if timeline.aggregated:
        notes.append(
            f"More than {layout.MAX_BARS} attempts: successful attempts are drawn per "
            f"1/{layout.BINS} of the run, coloured by the task that used most of it and as "
            "opaque as the worker was busy; hover for counts. Failed attempts are drawn one "
            "by one."
        )
    if timeline.unplaced:
        notes.append(
            f"{timeline.unplaced} attempts (lost or cancelled before starting) have no worker "
            "or start time and are not drawn."
        )
    return (
        timeline_svg(timeline)
        + f'<p class="legend">{legend}</p><p class="note">{escape(" ".join(notes))}</p>'
    )


def _durations(data: ReportData) -> str:
    if data.durations.empty:
        return '<p class="note">No successful attempts.</p>'
    return durations_svg(data.durations, data.timeline.colours) + (
        '<p class="note">Successful attempts per task name: one tick per attempt (up to 200, '
        "else evenly spaced quantiles), the pale box spans the middle half of the durations, "
        "the dark line is the median, the whiskers reach the fastest and the slowest; the "
        "scale turns logarithmic when they differ by more than 50×.</p>"
    )


def _failed(data: ReportData) -> str:
    if data.failed.empty:
        return '<p class="note">No task failed.</p>'
    rows = []
    for task in data.failed.itertuples(index=False):
        traceback = (
            f"<details><summary>traceback</summary><pre>{escape(task.traceback)}</pre></details>"
            if isinstance(task.traceback, str)
            else ""
        )
        where = escape(f"{task.hostname} {task.worker}") if isinstance(task.worker, str) else ""
        label = f"<br>{escape(task.label)}" if isinstance(task.label, str) else ""
        logs = f"provtask logs {data.run['run_id']} '{task.task_id}'"
        rows.append(
            f'<tr class="failed-task"><td><code>{escape(task.task_id)}</code>{label}</td>'
            f"<td>{escape(task.name)}</td><td class='num'>{task.attempts}</td>"
            f"<td><pre>{escape(str(task.error))}</pre>{traceback}"
            f'<p class="note">its output: <code>{escape(logs)}</code></p></td>'
            f"<td>{where}</td></tr>"
        )
    more = (
        f'<p class="note">… and {data.n_failed - MAX_FAILED} more: provtask tasks '
        f"{escape(data.run['run_id'])} --state failed</p>"
        if data.n_failed > MAX_FAILED
        else ""
    )
    head = "<tr><th>task</th><th>name</th><th>attempts</th><th>error</th><th>worker</th></tr>"
    return f'<table class="failed">{head}{"".join(rows)}</table>{more}'


def _table(frame: pd.DataFrame, formats: dict[str, str]) -> str:
    """A DataFrame as an HTML table; numbers right-aligned, formatted per column."""
    import pandas as pd

    numeric = {c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])}
    head = "".join(
        f'<th class="num">{escape(c)}</th>' if c in numeric else f"<th>{escape(c)}</th>"
        for c in frame.columns
    )
    body = []
    for row in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, row, strict=True):
            text = "" if pd.isna(value) else formats.get(column, "{}").format(value)
            css = ' class="num"' if column in numeric else ""
            cells.append(f"<td{css}>{escape(text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
