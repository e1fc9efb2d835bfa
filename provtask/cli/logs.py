"""``provtask logs``: what a task's attempt printed, and its traceback."""

from __future__ import annotations

import time
from pathlib import Path

import click

from .common import friendly_errors, open_store, store_option

FOLLOW_INTERVAL = 1.0  # s between looks at the store while following an attempt


@click.command()
@click.argument("run_ref", metavar="RUN")
@click.argument("task_id", metavar="TASK")
@click.option("--attempt", type=click.IntRange(min=1), help="Which attempt [the last one].")
@click.option("--stdout", "only", flag_value="stdout", help="Only what it printed to stdout.")
@click.option("--stderr", "only", flag_value="stderr", help="Only what it printed to stderr.")
@click.option("--traceback", "only", flag_value="traceback", help="Only its traceback.")
@click.option(
    "--follow", "-f", is_flag=True, help="Wait for a running attempt to end, then print it."
)
@store_option
@friendly_errors
def logs(
    run_ref: str,
    task_id: str,
    attempt: int | None,
    only: str | None,
    follow: bool,
    store_path: Path,
) -> None:
    """What TASK of RUN printed (stdout, stderr) and its traceback, for one attempt."""
    from ..analysis.logs import STREAMS, attempt_log

    store = open_store(store_path)
    log = attempt_log(store, run_ref, task_id, attempt)
    if follow and not log.ended:
        click.echo(f"{log.header()}: waiting for it to end…", err=True)
        while not log.ended:
            time.sleep(FOLLOW_INTERVAL)
            log = attempt_log(store, run_ref, task_id, log.attempt)
    if only is not None:
        click.echo(log.streams[only], nl=False)
        return
    click.echo(log.header())
    if not log.ended:
        click.echo("(still running: its output is recorded when it ends; use --follow)")
    for name in STREAMS:
        if log.streams[name]:
            click.echo(f"── {name} ──")
            click.echo(log.streams[name].rstrip("\n"))
