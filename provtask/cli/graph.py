"""``provtask graph``: the shape of a DAG file or of a run."""

from __future__ import annotations

from pathlib import Path

import click

from .common import friendly_errors, open_store, store_option

FORMATS = ("dot", "mermaid", "svg")


@click.command()
@click.argument("target", metavar="DAG_FILE|RUN")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="dot", show_default=True)
@click.option("--dag", "dag_name", help="Which DAG, if the file defines several.")
@store_option
@friendly_errors
def graph(target: str, fmt: str, dag_name: str | None, store_path: Path) -> None:
    """Print the graph of DAG_FILE (as declared) or of RUN (map elements folded, coloured by
    state) as Graphviz dot, Mermaid or SVG."""
    from ..analysis.graph import dag_graph, run_graph, to_dot, to_mermaid, to_svg

    if target.endswith(".py"):
        from ..dagfile import load_dag_file

        shape = dag_graph(load_dag_file(Path(target), dag_name))
    else:
        shape = run_graph(open_store(store_path), target)
    render = {"dot": to_dot, "mermaid": to_mermaid, "svg": to_svg}[fmt]
    click.echo(render(shape), nl=False)
