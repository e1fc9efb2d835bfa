"""A run's progress as it goes: a live bar on a terminal or in Jupyter, plain lines elsewhere.

Batch logs, ``nohup`` and CI capture stderr to a file, where a bar would show nothing until
the end; there a line is written every ``interval`` seconds instead.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from .handle import RunHandle
    from .progress import Progress

DEFAULT_INTERVAL = 30.0  # s between plain progress lines
INTERVAL_ENV = "PROVTASK_PROGRESS_INTERVAL"


def line_interval(interval: float | None = None) -> float:
    """Seconds between plain lines: ``interval``, else ``$PROVTASK_PROGRESS_INTERVAL``, else 30."""
    if interval is not None:
        return interval
    text = os.environ.get(INTERVAL_ENV)
    try:
        return float(text) if text else DEFAULT_INTERVAL
    except ValueError:
        raise ValueError(f"{INTERVAL_ENV}={text!r} is not a number of seconds") from None


def show_progress(
    handle: RunHandle, interval: float | None = None, stream: TextIO | None = None
) -> None:
    """Show the run's progress on ``stream`` (stderr) until it has ended."""
    from rich.console import Console

    stream = stream or sys.stderr
    console = Console(file=stream)
    if console.is_terminal or console.is_jupyter:
        draw_bar(handle.run_id, handle.progress, handle.wait, console)
    else:
        write_lines(handle.run_id, handle.progress, handle.wait, stream, line_interval(interval))


def draw_bar(
    label: str,
    snapshot: Callable[[], Progress],
    wait: Callable[[float], bool],
    console: object,
    refresh: float = 0.1,
) -> None:
    """A live bar as wide as the terminal, until ``wait`` says the run ended."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=None),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, expand=True, transient=False) as bar:
        task = bar.add_task(label, total=None, counts="starting…")
        while True:
            done = wait(refresh)
            now = snapshot()
            counts = now.summary(with_total=False)
            bar.update(task, total=now.total, completed=now.finished, counts=counts)
            if done:
                return


def write_lines(
    label: str,
    snapshot: Callable[[], Progress],
    wait: Callable[[float], bool],
    stream: TextIO,
    interval: float,
) -> None:
    """``<label> 12/40 done, 2 running, 1 failed, 25 queued, 0:01:30`` every ``interval``
    seconds and once at the end."""
    start = time.monotonic()
    while True:
        done = wait(interval)
        elapsed = int(time.monotonic() - start)
        clock = f"{elapsed // 3600}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}"
        stream.write(f"{label} {snapshot().summary()}, {clock}\n")
        stream.flush()
        if done:
            return
