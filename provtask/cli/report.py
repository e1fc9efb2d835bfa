"""``provtask report`` (HTML and PNG) and ``provtask lineage`` (a tree in the terminal)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .common import friendly_errors, json_option, open_store, run_argument, store_option

if TYPE_CHECKING:
    import pandas as pd
    from rich.tree import Tree

# Inputs listed under one task in the tree before the rest are summarised (a big map).
MAX_CHILDREN = 20


@click.command()
@run_argument
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the HTML report here [report-<run id>.html unless --png is given].",
)
@click.option(
    "--png",
    "png_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the plots as PNG files into this folder (needs provtask[report]).",
)
@store_option
@friendly_errors
def report(run_ref: str, html_path: Path | None, png_dir: Path | None, store_path: Path) -> None:
    """Write a self-contained HTML report of a run, and/or its plots as PNG."""
    from ..analysis.export import safe_run_id
    from ..analysis.report import write_html, write_pngs

    store = open_store(store_path)
    run_id = store.resolve_run(run_ref)
    if html_path is None and png_dir is None:
        html_path = Path(f"report-{safe_run_id(run_id)}.html")
    if png_dir is not None:
        for path in write_pngs(store, run_id, png_dir):
            click.echo(f"wrote {path}")
    if html_path is not None:
        click.echo(f"wrote {write_html(store, run_id, html_path)}")


@click.command()
@click.argument("run_ref", metavar="RUN")
@click.argument("target", metavar="TASK_OR_HASH")
@json_option
@store_option
@friendly_errors
def lineage(run_ref: str, target: str, as_json: bool, store_path: Path) -> None:
    """What a task's output was computed from, back to the DAG params.

    TASK_OR_HASH is a task id of the run, or a prefix (6+ hex digits) of its output hash.
    """
    from ..analysis.lineage import lineage as compute_lineage

    frame = compute_lineage(open_store(store_path), run_ref, target)
    if as_json:
        from .jsonout import echo_json, records

        echo_json(records(frame))
        return
    from rich.console import Console

    Console(width=None if sys.stdout.isatty() else 200).print(_tree(frame))


def _tree(frame: pd.DataFrame) -> Tree:
    """The lineage as a tree: each task above the tasks and params it was computed from.

    A task that feeds several others is expanded once, where it was first reached, and
    named with ``↑`` elsewhere.
    """
    from rich.markup import escape
    from rich.tree import Tree

    rows = {row.task_id: row for row in frame.itertuples(index=False)}
    inputs: dict[str, list[str]] = {}
    for row in rows.values():
        for consumer in row.feeds:
            inputs.setdefault(consumer, []).append(row.task_id)

    root = next(iter(rows.values()))
    tree = Tree(_label(root))
    stack = [(tree, root.task_id)]
    while stack:
        branch, node = stack.pop()
        children = inputs.get(node, [])
        for child in children[:MAX_CHILDREN]:
            child_row = rows[child]
            if child_row.parent == node:
                stack.append((branch.add(_label(child_row)), child))
            else:
                name = f"param {child_row.name}" if child_row.kind == "param" else child
                shown = f"↑ {name} (expanded under {child_row.parent})"
                branch.add(f"[dim]{escape(shown)}[/dim]")
        if len(children) > MAX_CHILDREN:
            branch.add(f"[dim]… {len(children) - MAX_CHILDREN} more (--json lists all)[/dim]")
    return tree


def _label(row: object) -> str:
    import pandas as pd
    from rich.markup import escape

    if row.kind == "param":
        return f"[magenta]param {escape(row.name)}[/magenta] = {escape(str(row.value))}"
    state_colour = {"success": "green", "failed": "red"}.get(str(row.state), "yellow")
    parts = [f"[bold]{escape(row.task_id)}[/bold]", f"[{state_colour}]{row.state}[/]"]
    if isinstance(row.label, str):
        parts.insert(1, f"[cyan]{escape(row.label)}[/cyan]")
    if pd.notna(row.item):
        parts.append(f"item {int(row.item)} of its input list")
    if isinstance(row.output_hash, str):
        parts.append(f"out {row.output_hash[:12]}")
    if isinstance(row.code_hash, str):
        parts.append(f"code {row.code_hash[:12]}")
    if pd.notna(row.attempt):
        where = f" on {row.worker} ({row.hostname})" if isinstance(row.worker, str) else ""
        parts.append(f"attempt {row.attempt}{where}")
    return "  ".join(parts)
