"""Commands that read the store: runs, show, tasks, efficiency."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..states import RunStatus, TaskState
from .common import echo_frame, friendly_errors, json_option, open_store, run_argument, store_option

if TYPE_CHECKING:
    import pandas as pd

    from ..store import Store


@click.command()
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
    frame = open_store(store_path).runs(dag=dag_name, status=status, limit=limit)
    echo_frame(
        frame,
        as_json,
        ["run_id", "dag_name", "status", "n_tasks", "started_at", "duration", "user", "host"],
    )


@click.command()
@run_argument
@json_option
@store_option
@friendly_errors
def show(run_ref: str, as_json: bool, store_path: Path) -> None:
    """A run's details and its tasks by name (RUN may be 'latest' or an id prefix)."""
    store = open_store(store_path)
    if as_json:
        from .jsonout import echo_json

        echo_json(run_record(store, run_ref))
        return
    print_run(store, run_ref)


def run_record(store: Store, run_ref: str) -> dict:
    """A run for ``--json``: its ``runs`` row, ``states`` and the per-name ``tasks`` table."""
    from ..store import task_summary
    from .jsonout import epoch_to_iso, records

    info = epoch_to_iso(store.run(run_ref))
    info["tasks"] = records(task_summary(store.tasks(info["run_id"])))
    return info


def print_run(store: Store, run_ref: str) -> None:
    from ..store import task_summary

    info = store.run(run_ref)
    duration = (info["ended_at"] or time.time()) - info["started_at"]
    click.echo(
        f"run {info['run_id']}  dag {info['dag_name']}  status {info['status']}  "
        f"{info['n_tasks'] or 0} tasks in {duration:.1f}s"
    )
    click.echo(f"params {json.dumps(info['params'])}  cluster {info['cluster'] or '-'}")
    tasks = store.tasks(info["run_id"])
    summary = task_summary(tasks)
    echo_frame(summary, False, list(summary.columns))
    failed = tasks[tasks["state"] == "failed"]
    for row in failed.head(10).itertuples():
        label = f" ({row.label})" if isinstance(row.label, str) else ""
        click.echo(f"  ✗ {row.task_id}{label}: {row.error}", err=True)
    if len(failed) > 10:
        click.echo(
            f"  … and {len(failed) - 10} more: provtask tasks {info['run_id']} --state failed"
        )
    if info["status"] == "failed" and info["error"]:
        click.echo(f"engine error: {info['error'].splitlines()[0]}", err=True)
    attempts = store.attempts(info["run_id"])
    print_mpi_attempts(attempts)
    print_gpu_attempts(attempts)


MPI_SHOWN = 10  # MPI (and GPU) attempts listed by provtask show


def print_mpi_attempts(attempts: pd.DataFrame) -> None:
    """One line per MPI attempt: ranks, nodes used, launcher, exit code, and the command."""
    import pandas as pd

    if "mpi_command" not in attempts or attempts["mpi_command"].isna().all():
        return
    mpi = attempts[attempts["mpi_command"].notna()]
    click.echo("MPI attempts:")
    for row in mpi.head(MPI_SHOWN).itertuples():
        nodes = ",".join(dict.fromkeys(json.loads(row.mpi_node_list))) or "-"
        code = "-" if pd.isna(row.exit_code) else int(row.exit_code)
        click.echo(
            f"  {row.task_id} #{row.attempt} {row.status}: {int(row.mpi_ranks)} ranks on "
            f"{nodes} via {row.mpi_launcher}, exit code {code}, "
            f"{row.mpi_wall_time.total_seconds():.1f}s"
        )
        click.echo(f"    $ {row.mpi_command}")
    if len(mpi) > MPI_SHOWN:
        click.echo(f"  … and {len(mpi) - MPI_SHOWN} more: provtask.Store(...).attempts(run)")


def print_gpu_attempts(attempts: pd.DataFrame) -> None:
    """One line per GPU attempt: the devices it ran on, where."""
    if "gpu_ids" not in attempts or attempts["gpu_ids"].isna().all():
        return
    gpu = attempts[attempts["gpu_ids"].notna()]
    click.echo("GPU attempts:")
    for row in gpu.head(MPI_SHOWN).itertuples():
        job = f", batch job {row.batch_job_id}" if isinstance(row.batch_job_id, str) else ""
        click.echo(
            f"  {row.task_id} #{row.attempt} {row.status}: GPUs {row.gpu_ids} on "
            f"{row.node or '-'}{job}, process {row.pid}"
        )
    if len(gpu) > MPI_SHOWN:
        click.echo(f"  … and {len(gpu) - MPI_SHOWN} more: provtask.Store(...).attempts(run)")


@click.command()
@run_argument
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
    store = open_store(store_path)
    frame = store.tasks(run_ref, state=list(states) or None, name=name)
    if name is not None and frame.empty:
        check_task_name(store, run_ref, name)
    frame = frame[frame["kind"] != "map"]
    columns = ["task_id", "label", "name", "state", "attempts", "started_at", "duration"]
    if frame["label"].isna().all() and not as_json:  # JSON keeps every key, always
        columns.remove("label")
    if not frame.empty:
        attempts = store.attempts(frame["run_id"].iloc[0])
        frame, mpi_columns = with_last_mpi_attempt(frame, attempts)
        frame, gpu_columns = with_last_gpu_ids(frame, attempts)
        columns += mpi_columns + gpu_columns
    echo_frame(frame, as_json, [*columns, "output_hash", "error"])


def check_task_name(store: Store, run_ref: str, name: str) -> None:
    """An unknown task name is an error that names the closest one, not an empty table."""
    from ..errors import NotFoundError
    from ..suggest import did_you_mean

    run_id = store.resolve_run(run_ref)
    known = [
        n
        for (n,) in store.conn.execute(
            "SELECT DISTINCT name FROM tasks WHERE run_id = ?", (run_id,)
        )
    ]
    if name not in known:
        raise NotFoundError(
            f"run {run_id} has no task named {name!r}{did_you_mean(name, known)}; "
            f"its task names: {', '.join(known)}"
        )


def with_last_mpi_attempt(
    tasks: pd.DataFrame, attempts: pd.DataFrame
) -> tuple[pd.DataFrame, list[str]]:
    """Tasks with the ranks, nodes used and exit code of their last MPI attempt, if any."""
    import pandas as pd

    if "mpi_command" not in attempts or attempts["mpi_command"].isna().all():
        return tasks, []
    last = attempts.sort_values("attempt").groupby("task_id").last()
    nodes = last["mpi_node_list"].map(
        lambda text: ",".join(dict.fromkeys(json.loads(text))) if isinstance(text, str) else None
    )
    extra = pd.DataFrame(
        {"ranks": last["mpi_ranks"], "nodes": nodes, "exit_code": last["exit_code"]}
    ).astype({"ranks": "Int64", "exit_code": "Int64"})
    return tasks.join(extra, on="task_id"), ["ranks", "nodes", "exit_code"]


def with_last_gpu_ids(
    tasks: pd.DataFrame, attempts: pd.DataFrame
) -> tuple[pd.DataFrame, list[str]]:
    """Tasks with the devices of their last attempt, if any attempt of the run had GPUs."""
    if "gpu_ids" not in attempts or attempts["gpu_ids"].isna().all():
        return tasks, []
    last = attempts.sort_values("attempt").groupby("task_id")["gpu_ids"].last()
    return tasks.join(last, on="task_id"), ["gpu_ids"]


@click.command(name="efficiency")
@run_argument
@json_option
@store_option
@friendly_errors
def efficiency_command(run_ref: str, as_json: bool, store_path: Path) -> None:
    """How a run's allocated worker time was spent, per partition (slot-seconds)."""
    from ..analysis import efficiency
    from ..analysis.efficiency import CATEGORIES

    table = efficiency(open_store(store_path), run_ref)
    columns = [
        "partition",
        "workers",
        "slots",
        "allocated",
        *CATEGORIES,
        "efficiency",
        "queue_wait",
    ]
    if not as_json:  # one unit for every time column: seconds with millisecond digits
        import pandas as pd

        for column in ("allocated", *CATEGORIES, "queue_wait"):
            table[column] = pd.to_timedelta(table[column], unit="s")
        table["efficiency"] = table["efficiency"].map(lambda e: f"{e:.1%}")
    echo_frame(table, as_json, columns)
