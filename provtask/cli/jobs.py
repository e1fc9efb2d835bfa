"""``provtask jobs``: a run's batch jobs as provtask saw them, and as SLURM accounted them."""

from __future__ import annotations

from pathlib import Path

import click

from ..analysis.sacct import ACCOUNTING_COLUMNS
from .common import echo_frame, friendly_errors, json_option, open_store, run_argument, store_option

RECORDED = ["job_id", "partition", "name", "state", "reason", "submitted_at", "ended_at", "error"]
# The accounting columns shown in a terminal: all but the start and end times.
ACCOUNTED = [
    "job_id",
    "partition",
    "name",
    "recorded_state",
    "workers",
    *(c for c in ACCOUNTING_COLUMNS if c not in ("start", "end")),
]


@click.command()
@run_argument
@click.option(
    "--sacct",
    "with_sacct",
    is_flag=True,
    help="Add SLURM's accounting of each job (state, exit code, elapsed, MaxRSS, nodes); "
    "needs sacct and slurmdbd.",
)
@json_option
@store_option
@friendly_errors
def jobs(run_ref: str, with_sacct: bool, as_json: bool, store_path: Path) -> None:
    """The batch jobs submitted for a run's partitions."""
    store = open_store(store_path)
    run_id = store.resolve_run(run_ref)
    if with_sacct:
        from ..analysis.sacct import job_accounting

        frame, columns = job_accounting(store, run_id), ACCOUNTED
        if not as_json:
            for column in ("max_rss", "req_mem"):
                frame[column] = frame[column].map(_megabytes, na_action="ignore")
    else:
        frame, columns = store.jobs(run_id), RECORDED
    if frame.empty and not as_json:
        click.echo(f"run {run_id} submitted no batch jobs (its workers were not batch jobs)")
        return
    echo_frame(frame, as_json, columns)


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f}MB"
