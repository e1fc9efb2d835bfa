"""The ``provtask`` command: a thin layer over the Python API (only this module knows click)."""

from __future__ import annotations

import functools
import json
import signal
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .engine.progress_bar import show_progress
from .errors import ProvtaskError, RunInterrupted
from .states import RunStatus, TaskState

if TYPE_CHECKING:
    import pandas as pd

    from .store import Store

store_option = click.option(
    "--store",
    "store_path",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="PROVTASK_STORE",
    default="store",
    show_default=True,
    help="Provenance store folder (env PROVTASK_STORE).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON records.")


def friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn provtask errors into one-line messages with the error's exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ProvtaskError as exc:
            error = click.ClickException(str(exc))
            error.exit_code = exc.exit_code
            raise error from None

    return wrapper


@click.group()
@click.version_option(package_name="provtask")
def main() -> None:
    """Run DAGs of Python and MPI tasks with full provenance."""


def _parse_params(values: tuple[str, ...]) -> dict[str, str]:
    params = {}
    for item in values:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--param")
        params[name.strip()] = text
    return params


@main.command()
@click.argument("dag_file", type=click.Path(path_type=Path))
@click.option("--dag", "dag_name", help="Which DAG, if the file defines several.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Override a param.")
@click.option(
    "--workers", type=click.IntRange(min=1), help="Local worker processes [one per core]."
)
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@store_option
@friendly_errors
def run(
    dag_file: Path,
    dag_name: str | None,
    params: tuple[str, ...],
    workers: int | None,
    progress: bool,
    store_path: Path,
) -> None:
    """Run the DAG defined in DAG_FILE; exits non-zero if any task fails."""
    from .dagfile import load_dag_file
    from .engine.api import submit

    dag = load_dag_file(dag_file, dag_name)
    resolved = dag.resolve_params(_parse_params(params), from_text=True)
    handle = submit(dag, params=resolved, store=store_path, n_workers=workers)
    click.echo(f"run {handle.run_id} of DAG {dag.name!r} (store: {handle.store_path})", err=True)
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
    _print_run(_open(store_path), result.run_id)
    if not result.ok:
        raise ProvtaskError(f"run {result.run_id} {result.status.value}")


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _open(store_path: Path) -> Store:
    from .store import Store

    return Store(store_path, create=False)


def _echo_frame(frame: pd.DataFrame, as_json: bool, columns: list[str]) -> None:
    """A DataFrame as a rich table, or as JSON records."""
    frame = frame[[c for c in columns if c in frame]]
    if as_json:
        click.echo(frame.to_json(orient="records", date_format="iso", indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*frame.columns, box=None, header_style="bold")
    for row in frame.itertuples(index=False):
        table.add_row(*(_cell(value) for value in row))
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def _cell(value: Any) -> str:
    import pandas as pd

    if value is None or (not isinstance(value, list | dict) and pd.isna(value)):
        return ""
    if isinstance(value, pd.Timedelta):
        return f"{value.total_seconds():.3f}s"
    if isinstance(value, pd.Timestamp):
        return value.tz_convert(None).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@main.command()
@click.option("--dag", "dag_name", help="Only runs of this DAG.")
@click.option(
    "--status", type=click.Choice([s.value for s in RunStatus]), help="Only runs with this status."
)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@json_option
@store_option
@friendly_errors
def runs(
    dag_name: str | None, status: str | None, limit: int, as_json: bool, store_path: Path
) -> None:
    """List runs, newest first."""
    frame = _open(store_path).runs(dag=dag_name, status=status, limit=limit)
    _echo_frame(
        frame,
        as_json,
        ["run_id", "dag_name", "status", "n_tasks", "started_at", "duration", "user", "host"],
    )


@main.command()
@click.argument("run_ref", metavar="RUN")
@json_option
@store_option
@friendly_errors
def show(run_ref: str, as_json: bool, store_path: Path) -> None:
    """A run's details and its tasks by name (RUN may be 'latest' or an id prefix)."""
    store = _open(store_path)
    if as_json:
        from .store import task_summary

        info = store.run(run_ref)
        for column in ("started_at", "ended_at", "heartbeat_at"):
            if info[column] is not None:  # ISO 8601, like the other --json outputs
                info[column] = datetime.fromtimestamp(info[column], timezone.utc).isoformat()
        summary = task_summary(store.tasks(info["run_id"]))
        info["tasks"] = json.loads(summary.to_json(orient="records", date_format="iso"))
        click.echo(json.dumps(info, indent=2, default=str))
        return
    _print_run(store, run_ref)


def _print_run(store: Store, run_ref: str) -> None:
    from .store import task_summary

    info = store.run(run_ref)
    duration = (info["ended_at"] or time.time()) - info["started_at"]
    click.echo(
        f"run {info['run_id']}  dag {info['dag_name']}  status {info['status']}  "
        f"{info['n_tasks'] or 0} tasks in {duration:.1f}s"
    )
    click.echo(f"params {json.dumps(info['params'])}  cluster {info['cluster'] or '-'}")
    tasks = store.tasks(info["run_id"])
    summary = task_summary(tasks)
    _echo_frame(summary, False, list(summary.columns))
    failed = tasks[tasks["state"] == "failed"]
    for row in failed.head(10).itertuples():
        click.echo(f"  ✗ {row.task_id}: {row.error}", err=True)
    if len(failed) > 10:
        click.echo(
            f"  … and {len(failed) - 10} more: provtask tasks {info['run_id']} --state failed"
        )
    if info["status"] == "failed" and info["error"]:
        click.echo(f"engine error: {info['error'].splitlines()[0]}", err=True)


@main.command()
@click.argument("run_ref", metavar="RUN")
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice([s.value for s in TaskState]),
    help="Only tasks in this state (repeatable).",
)
@click.option("--name", help="Only tasks of this task name.")
@json_option
@store_option
@friendly_errors
def tasks(
    run_ref: str, states: tuple[str, ...], name: str | None, as_json: bool, store_path: Path
) -> None:
    """The tasks of a run with state, attempts, timing and error."""
    frame = _open(store_path).tasks(run_ref, state=list(states) or None, name=name)
    frame = frame[frame["kind"] != "map"]
    _echo_frame(
        frame,
        as_json,
        ["task_id", "name", "state", "attempts", "started_at", "duration", "output_hash", "error"],
    )


@main.command(name="efficiency")
@click.argument("run_ref", metavar="RUN")
@json_option
@store_option
@friendly_errors
def efficiency_command(run_ref: str, as_json: bool, store_path: Path) -> None:
    """How a run's allocated worker time was spent, per partition (seconds)."""
    from .analysis import efficiency
    from .analysis.efficiency import CATEGORIES

    table = efficiency(_open(store_path), run_ref)
    columns = ["partition", "workers", "slots", "allocated", *CATEGORIES, "efficiency"]
    if not as_json:
        table["efficiency"] = table["efficiency"].map(lambda e: f"{e:.1%}")
    _echo_frame(table, as_json, columns)


@main.command()
@click.argument("run_refs", metavar="RUN...", nargs=-1, required=True)
@click.option(
    "--parquet",
    "directory",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of the Parquet datasets (TABLE/run_id=ID/part-0.parquet).",
)
@store_option
@friendly_errors
def export(run_refs: tuple[str, ...], directory: Path, store_path: Path) -> None:
    """Export runs as Parquet datasets, one per table, partitioned by run."""
    from .analysis.export import export_parquet

    counts = export_parquet(_open(store_path), list(run_refs), directory)
    click.echo(", ".join(f"{table}: {rows} rows" for table, rows in counts.items()))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
