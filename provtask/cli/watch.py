"""``provtask watch``: follow a run from another shell, by reading the store."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import NotFoundError
from .common import (
    friendly_errors,
    open_store,
    progress_interval_option,
    run_argument,
    store_option,
)

if TYPE_CHECKING:
    from ..store import Store

BAR_REFRESH = 1.0  # s between reads of the store while drawing the bar
# A run's id is announced a moment before its row is written: watch started at once waits.
PATIENCE = 10.0  # s


def _find_run(store_path: Path, run_ref: str) -> tuple[Store, str]:
    deadline = time.monotonic() + PATIENCE
    while True:
        try:
            store = open_store(store_path)
            return store, store.resolve_run(run_ref)
        except NotFoundError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@click.command()
@run_argument
@progress_interval_option
@store_option
@friendly_errors
def watch(run_ref: str, progress_interval: float | None, store_path: Path) -> None:
    """Follow RUN's progress until it ends, then print its summary (as 'provtask show').

    Works from any shell that sees the store: a bar on a terminal, else a line every
    interval. Ctrl-C stops watching, not the run."""
    from rich.console import Console

    from ..engine.progress import Progress
    from ..engine.progress_bar import draw_bar, line_interval, write_lines
    from .query import print_run

    store, run_id = _find_run(store_path, run_ref)

    def snapshot() -> Progress:
        return Progress.from_store(store, run_id)

    def wait(timeout: float) -> bool:
        if store.run(run_id)["status"] != "running":
            return True
        time.sleep(timeout)
        return store.run(run_id)["status"] != "running"

    console = Console(file=sys.stderr)
    try:
        if console.is_terminal:
            draw_bar(run_id, snapshot, wait, console, refresh=BAR_REFRESH)
        else:
            write_lines(run_id, snapshot, wait, sys.stderr, line_interval(progress_interval))
    except KeyboardInterrupt:
        click.echo(f"stopped watching; run {run_id} goes on", err=True)
        return
    print_run(store, run_id)
