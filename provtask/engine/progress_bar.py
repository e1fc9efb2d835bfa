"""A live progress bar for a run: done / running / failed counts (terminal or Jupyter)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .handle import RunHandle


def show_progress(handle: RunHandle, refresh: float = 0.1) -> None:
    """Draw the run's progress until it has ended."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(handle.run_id, total=None, counts="starting…")
        while True:
            done = handle.wait(timeout=refresh)
            snapshot = handle.progress()
            bar.update(
                task, total=snapshot.total, completed=snapshot.finished, counts=snapshot.summary()
            )
            if done:
                return
