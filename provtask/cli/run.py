"""``provtask run``: run a DAG file with a progress bar."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..engine.progress_bar import show_progress
from ..errors import ProvtaskError, RunInterrupted
from .common import (
    clusters_option,
    friendly_errors,
    json_option,
    open_store,
    progress_interval_option,
    store_option,
)
from .jsonout import echo_json
from .query import print_run, run_record

if TYPE_CHECKING:
    from ..engine.handle import RunHandle


def parse_params(values: tuple[str, ...]) -> dict[str, str]:
    """``--param NAME=VALUE`` options as name → text."""
    params = {}
    for item in values:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--param")
        params[name.strip()] = text
    return params


@click.command()
@click.argument("dag_file", type=click.Path(path_type=Path))
@click.option("--dag", "dag_name", help="Which DAG, if the file defines several.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Override a param.")
@click.option(
    "--workers", type=click.IntRange(min=1), help="Local worker processes [one per core]."
)
@click.option(
    "--progress/--no-progress",
    default=True,
    help="Show progress on stderr: a bar on a terminal, else a line every interval.",
)
@progress_interval_option
@click.option("--no-cache", is_flag=True, help="Recompute every task (look nothing up).")
@click.option(
    "--refresh",
    multiple=True,
    metavar="PATTERN",
    help="Recompute tasks whose name or id matches (fnmatch), and all downstream.",
)
@click.option(
    "--keep",
    multiple=True,
    metavar="PATTERN",
    help="Reuse recorded outputs of matching tasks although their code changed (same inputs).",
)
@click.option(
    "--record-env", multiple=True, metavar="NAME", help="Record this environment variable."
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Show what would run, what is cached and which partitions' jobs would be "
    "submitted; run nothing.",
)
@clusters_option
@json_option
@store_option
@friendly_errors
def run(
    dag_file: Path,
    dag_name: str | None,
    params: tuple[str, ...],
    workers: int | None,
    progress: bool,
    no_cache: bool,
    progress_interval: float | None,
    refresh: tuple[str, ...],
    keep: tuple[str, ...],
    record_env: tuple[str, ...],
    dry_run: bool,
    clusters_path: Path | None,
    as_json: bool,
    store_path: Path,
) -> None:
    """Run the DAG defined in DAG_FILE; exits non-zero if any task fails."""
    from ..dagfile import load_dag_file
    from ..engine.api import submit

    dag = load_dag_file(dag_file, dag_name)
    resolved = dag.resolve_params(parse_params(params), from_text=True)
    if dry_run:
        print_plan(dag, resolved, store_path, clusters_path, no_cache, as_json)
        return
    handle = submit(
        dag,
        params=resolved,
        store=store_path,
        n_workers=workers,
        clusters=clusters_path,
        cache=not no_cache,
        refresh=list(refresh),
        keep=list(keep),
        record_env=list(record_env),
    )
    click.echo(f"run {handle.run_id} of DAG {dag.name!r} (store: {handle.store_path})", err=True)
    follow_run(handle, store_path, progress, progress_interval, as_json)


def follow_run(
    handle: RunHandle,
    store_path: Path,
    progress: bool,
    interval: float | None = None,
    as_json: bool = False,
) -> None:
    """Show a run's progress until it ends (Ctrl-C or SIGTERM cancel it), then its summary
    (as ``show --json`` with ``as_json``); raises unless every task ended ok."""
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        if progress:
            show_progress(handle, interval)
        else:
            handle.wait()
    except KeyboardInterrupt:
        click.echo(
            f"interrupted: cancelling run {handle.run_id}; what ran is recorded "
            f"(provtask show {handle.run_id})",
            err=True,
        )
        handle.cancel("interrupted (Ctrl-C or SIGTERM)")
        handle.wait(timeout=60)
        raise click.exceptions.Exit(RunInterrupted.exit_code) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    result = handle.result()
    if as_json:
        echo_json(run_record(open_store(store_path), result.run_id))
    else:
        print_run(open_store(store_path), result.run_id)
    if not result.ok:
        raise ProvtaskError(f"run {result.run_id} {result.status.value}")


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def print_plan(
    dag: Any, params: dict, store_path: Path, clusters: Path | None, no_cache: bool, as_json: bool
) -> None:
    """``--dry-run``: each node's fate, then the batch jobs its partitions would need."""
    import dataclasses

    from ..clusters.config import load_clusters
    from ..dryrun import plan
    from ..store import Store
    from .jsonout import echo_json

    config = load_clusters(clusters)
    store = None if no_cache or not (store_path / "provtask.db").exists() else Store(store_path)
    planned = plan(dag, params, store, config)
    if as_json:
        echo_json([dataclasses.asdict(p) for p in planned])
        return
    click.echo(f"dry run of DAG {dag.name!r} {params}: nothing is run or submitted")
    for p in planned:
        click.echo(f"  {p.action:<8} {p.task_id} [{p.kind}, partition {p.partition}]: {p.detail}")
    used = dict.fromkeys(p.partition for p in planned if p.action != "cached")
    for name in used:
        if config is None:
            click.echo(f"jobs: none (the embedded LocalCluster runs {name} tasks)")
            continue
        part = config.partition_for(name, name)
        click.echo(
            f"jobs: partition {name} ({part.scheduler}): batch jobs of {part.cores} cores, "
            f"scaled with the ready tasks; see 'provtask clusters --job-script {name}'"
        )
