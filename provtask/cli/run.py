"""``provtask run``: run a DAG file with a progress bar."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..engine.progress_bar import show_progress
from ..errors import ProvtaskError, RunInterrupted
from .common import clusters_option, friendly_errors, open_store, store_option
from .query import print_run

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
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@click.option("--no-cache", is_flag=True, help="Recompute every task (look nothing up).")
@click.option(
    "--refresh",
    multiple=True,
    metavar="PATTERN",
    help="Recompute tasks whose name or id matches (fnmatch), and all downstream.",
)
@click.option(
    "--record-env", multiple=True, metavar="NAME", help="Record this environment variable."
)
@clusters_option
@store_option
@friendly_errors
def run(
    dag_file: Path,
    dag_name: str | None,
    params: tuple[str, ...],
    workers: int | None,
    progress: bool,
    no_cache: bool,
    refresh: tuple[str, ...],
    record_env: tuple[str, ...],
    clusters_path: Path | None,
    store_path: Path,
) -> None:
    """Run the DAG defined in DAG_FILE; exits non-zero if any task fails."""
    from ..dagfile import load_dag_file
    from ..engine.api import submit

    dag = load_dag_file(dag_file, dag_name)
    resolved = dag.resolve_params(parse_params(params), from_text=True)
    handle = submit(
        dag,
        params=resolved,
        store=store_path,
        n_workers=workers,
        clusters=clusters_path,
        cache=not no_cache,
        refresh=list(refresh),
        record_env=list(record_env),
    )
    click.echo(f"run {handle.run_id} of DAG {dag.name!r} (store: {handle.store_path})", err=True)
    follow_run(handle, store_path, progress)


def follow_run(handle: RunHandle, store_path: Path, progress: bool) -> None:
    """Show a run's progress until it ends (Ctrl-C or SIGTERM cancel it), then its summary;
    raises unless every task ended ok."""
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        if progress:
            show_progress(handle)
        else:
            handle.wait()
    except KeyboardInterrupt:
        click.echo("interrupting: cancelling running tasks…", err=True)
        handle.cancel("interrupted (Ctrl-C or SIGTERM)")
        handle.wait(timeout=60)
        raise RunInterrupted(
            f"run {handle.run_id} interrupted; finished tasks are recorded. "
            f"See: provtask show {handle.run_id}"
        ) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    result = handle.result()
    print_run(open_store(store_path), result.run_id)
    if not result.ok:
        raise ProvtaskError(f"run {result.run_id} {result.status.value}")


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
