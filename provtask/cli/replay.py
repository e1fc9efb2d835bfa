"""``provtask replay``: run a recorded run again, where and as it ran, reusing what finished."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import ProvtaskError
from .common import PathWithoutNul, friendly_errors, json_option, open_store, store_option
from .jsonout import echo_json, epoch_to_iso
from .run import follow_run

if TYPE_CHECKING:
    from ..store import Store


@click.command()
@click.argument("run_ref", metavar="[RUN]", default="latest")
@click.option(
    "--task",
    "tasks",
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
    "--set",
    "overrides",
    multiple=True,
    metavar="FIELD=VALUE",
    help="Resources of the replayed tasks: memory=16GB, walltime=4h, partition=P, ...",
)
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Override a param.")
@click.option(
    "--failed-only/--all",
    default=True,
    help="Replay failed, upstream_failed and unfinished tasks and their downstream "
    "[default], or all tasks; unchanged tasks come from the store either way.",
)
@click.option(
    "--clusters",
    "clusters_path",
    type=PathWithoutNul(dir_okay=False, path_type=Path),
    help="Run on this clusters file [default: the clusters config RUN recorded].",
)
@click.option(
    "--from-record", is_flag=True, help="Run the DAG source RUN recorded, not the file on disk."
)
@click.option(
    "--record-env", multiple=True, metavar="NAME", help="Also record this environment variable."
)
@click.option(
    "--workers", type=click.IntRange(min=1), help="Local worker processes [one per core]."
)
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@json_option
@store_option
@friendly_errors
def replay(
    run_ref: str,
    tasks: tuple[str, ...],
    keep: tuple[str, ...],
    overrides: tuple[str, ...],
    params: tuple[str, ...],
    failed_only: bool,
    clusters_path: Path | None,
    from_record: bool,
    record_env: tuple[str, ...],
    workers: int | None,
    progress: bool,
    as_json: bool,
    store_path: Path,
) -> None:
    """Run RUN [latest] again as a new run: its DAG file, params and clusters config as
    recorded, finished tasks reused from the store. With --json, print the new run's
    outcome as JSON once it ends."""
    from ..replay_plan import parse_overrides, plan_replay, submit_plan
    from .run import parse_params

    store = open_store(store_path)
    plan = plan_replay(
        store,
        run_ref,
        list(tasks),
        parse_overrides(overrides),
        failed_only,
        params=parse_params(params),
        clusters=clusters_path,
        keep=list(keep),
        from_record=from_record,
    )
    for warning in plan.warnings:
        click.secho(f"warning: {warning}", err=True, fg="yellow")
    handle = submit_plan(plan, store, n_workers=workers, record_env=list(record_env))
    click.echo(f"run {handle.run_id} replays run {plan.original} (store: {store.root})", err=True)
    if not as_json:
        follow_run(handle, store_path, progress)
        return
    result = handle.result()
    echo_json(epoch_to_iso(_outcome(store, result.run_id)))
    if not result.ok:
        raise ProvtaskError(f"run {result.run_id} {result.status.value}")


def _outcome(store: Store, run_id: str) -> dict:
    """The replay's JSON: its run row's essentials and task state counts."""
    run = store.run(run_id)
    context = store.run_context(run_id)
    started, ended = run["started_at"], run["ended_at"]
    return {
        "run_id": run_id,
        "status": run["status"],
        "replay_of": run["replay_of"],
        "dag_name": run["dag_name"],
        "clusters_origin": context["clusters_origin"],
        "keep": context["keep"],
        "started_at": started,
        "ended_at": ended,
        "duration": None if ended is None else ended - started,
        "states": run["states"],
        "error": run["error"],
    }
