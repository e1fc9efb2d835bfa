"""``provtask why`` and ``provtask replay``: explaining the cache, rerunning what failed."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .common import friendly_errors, json_option, open_store, store_option
from .run import follow_run


@click.command()
@click.argument("run_ref", metavar="RUN")
@click.argument("task_id", metavar="TASK")
@json_option
@store_option
@friendly_errors
def why(run_ref: str, task_id: str, as_json: bool, store_path: Path) -> None:
    """Why TASK of RUN was reused from the cache or recomputed: what differs (code component,
    input, cache_version) from the same task in the nearest earlier run of the DAG."""
    from ..analysis.why import why as explain

    answer = explain(open_store(store_path), run_ref, task_id)
    if as_json:
        click.echo(json.dumps(answer, indent=2, default=str))
    else:
        click.echo(answer["explanation"])


@click.command()
@click.argument("run_ref", metavar="RUN")
@click.option(
    "--task",
    "tasks",
    multiple=True,
    metavar="PATTERN",
    help="Recompute tasks whose name or id matches (fnmatch), and all downstream.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="FIELD=VALUE",
    help="Resources of the replayed tasks: memory=16GB, walltime=4h, partition=P, ...",
)
@click.option(
    "--failed-only/--all",
    default=True,
    help="Rerun only failed, upstream_failed and unfinished tasks [default], or everything.",
)
@click.option(
    "--workers", type=click.IntRange(min=1), help="Local worker processes [one per core]."
)
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@store_option
@friendly_errors
def replay(
    run_ref: str,
    tasks: tuple[str, ...],
    overrides: tuple[str, ...],
    failed_only: bool,
    workers: int | None,
    progress: bool,
    store_path: Path,
) -> None:
    """Run RUN's DAG file again as a new run, reusing its finished tasks from the store."""
    from ..engine.api import submit
    from ..replay import parse_overrides, plan_replay

    store = open_store(store_path)
    plan = plan_replay(store, run_ref, list(tasks), parse_overrides(overrides), failed_only)
    if plan.warning:
        click.secho(f"warning: {plan.warning}", err=True, fg="yellow")
    handle = submit(
        plan.dag,
        params=plan.params,
        store=store,
        n_workers=workers,
        refresh=plan.refresh,
        replay_of=plan.original,
    )
    click.echo(f"run {handle.run_id} replays run {plan.original} (store: {store.root})", err=True)
    follow_run(handle, store_path, progress)
