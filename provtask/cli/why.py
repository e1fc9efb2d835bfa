"""``provtask why``: why a task was reused from the cache, kept, or recomputed."""

from __future__ import annotations

from pathlib import Path

import click

from .common import friendly_errors, json_option, open_store, store_option
from .jsonout import echo_json, epoch_to_iso


@click.command()
@click.argument("refs", metavar="[RUN] TASK", nargs=-1, required=True)
@json_option
@store_option
@friendly_errors
def why(refs: tuple[str, ...], as_json: bool, store_path: Path) -> None:
    """Why TASK of RUN [latest] was reused from the cache or recomputed: what differs (code
    component, with a diff of its source; input; cache_version) from the same task in the
    nearest earlier run of the DAG, or which --keep pattern kept its output."""
    from ..analysis.why import why as explain

    if len(refs) > 2:
        raise click.UsageError(f"expected [RUN] TASK, got {len(refs)} arguments")
    run_ref, task_id = refs if len(refs) == 2 else ("latest", refs[0])
    answer = explain(open_store(store_path), run_ref, task_id)
    if as_json:
        for side in ("task", "compared_with"):
            if answer[side] is not None:
                answer[side] = epoch_to_iso(answer[side])
        echo_json(answer)
    else:
        click.echo(answer["explanation"])
