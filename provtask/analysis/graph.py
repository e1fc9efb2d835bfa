"""The shape of a DAG or of a run, as Graphviz dot, Mermaid or a self-contained SVG.

A run's map elements are folded into their map node, labelled with their count and states,
so a 10,000-element ensemble draws as one box.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING

import networkx as nx

if TYPE_CHECKING:
    from ..dag import DAG
    from ..store import Store

STATE_COLOURS = {
    "success": "#c7e9c0",
    "cached": "#c6dbef",
    "failed": "#fcbba1",
    "upstream_failed": "#fdd0a2",
    "cancelled": "#d9d9d9",
    "running": "#fff7bc",
    "pending": "#ffffff",
}


@dataclass
class Graph:
    """Nodes (id → label), their state for a run, and edges (source, target, kind)."""

    labels: dict[str, str]
    edges: list[tuple[str, str, str]]
    states: dict[str, str] = field(default_factory=dict)


def dag_graph(dag: DAG) -> Graph:
    """A DAG as declared: one node per call or ``.map``."""
    labels = {}
    for node_id, data in dag.graph.nodes(data=True):
        labels[node_id] = f"{node_id}.map(…)" if data["kind"] == "map" else node_id
    edges = [(u, v, kind) for u, v, kind in dag.graph.edges(data="kind")]
    return Graph(labels, edges)


def run_graph(store: Store, run: str) -> Graph:
    """A run as it went: map elements folded into their map node, with their states."""
    tasks = store.tasks(run)
    fold = {
        row.task_id: row.parent if row.kind == "element" else row.task_id
        for row in tasks.itertuples()
    }
    labels, states = {}, {}
    elements = tasks[tasks["kind"] == "element"].groupby("parent")["state"]
    counts = {parent: Counter(map(str, group)) for parent, group in elements}
    for row in tasks[tasks["kind"] != "element"].itertuples():
        labels[row.task_id] = row.task_id
        states[row.task_id] = str(row.state)
        if row.task_id in counts:
            shown = ", ".join(f"{n} {s}" for s, n in sorted(counts[row.task_id].items()))
            total = sum(counts[row.task_id].values())
            labels[row.task_id] = f"{row.task_id} ×{total}: {shown}"
    edges = {}
    for row in store.edges(run).itertuples():
        source, target = fold.get(row.source, row.source), fold.get(row.target, row.target)
        if source != target:
            edges[(source, target)] = row.kind
    return Graph(labels, [(u, v, kind) for (u, v), kind in edges.items()], states)


def to_dot(graph: Graph) -> str:
    lines = ["digraph provtask {", "  rankdir=LR;", '  node [shape=box, style="rounded,filled"];']
    for node, label in graph.labels.items():
        fill = STATE_COLOURS.get(graph.states.get(node, ""), "#ffffff")
        lines.append(f"  {_quoted(node)} [label={_quoted(label)}, fillcolor={_quoted(fill)}];")
    for source, target, kind in graph.edges:
        style = " [style=dashed]" if kind == "order" else ""
        lines.append(f"  {_quoted(source)} -> {_quoted(target)}{style};")
    return "\n".join([*lines, "}"]) + "\n"


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def to_mermaid(graph: Graph) -> str:
    ids = {node: f"n{i}" for i, node in enumerate(graph.labels)}
    lines = ["flowchart LR"]
    for node, label in graph.labels.items():
        lines.append(f'  {ids[node]}["{label.replace(chr(34), "#quot;")}"]')
        if node in graph.states:
            lines.append(f"  class {ids[node]} {graph.states[node]}")
    for source, target, kind in graph.edges:
        lines.append(f"  {ids[source]} {'-.->' if kind == 'order' else '-->'} {ids[target]}")
    for state, colour in STATE_COLOURS.items():
        if state in graph.states.values():
            lines.append(f"  classDef {state} fill:{colour}")
    return "\n".join(lines) + "\n"


def to_svg(graph: Graph) -> str:
    """Columns by topological generation, left to right; no script, nothing fetched."""
    network = nx.DiGraph()
    network.add_nodes_from(graph.labels)
    network.add_edges_from((u, v) for u, v, _ in graph.edges)
    columns = [sorted(layer) for layer in nx.topological_generations(network)]
    width = max((7 * len(graph.labels[n]) + 24 for n in graph.labels), default=120)
    column_width, row_height = width + 60, 56
    place = {
        node: (20 + c * column_width, 20 + r * row_height)
        for c, layer in enumerate(columns)
        for r, node in enumerate(layer)
    }
    total_w = 20 + len(columns) * column_width
    total_h = 20 + max((len(layer) for layer in columns), default=1) * row_height
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {total_w} {total_h}" '
        f'width="{total_w}" height="{total_h}" font-family="sans-serif" font-size="12">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
        'markerHeight="8" orient="auto"><path d="M0 0 L10 5 L0 10 z"/></marker></defs>',
    ]
    for source, target, kind in graph.edges:
        (x1, y1), (x2, y2) = place[source], place[target]
        dash = ' stroke-dasharray="4 3"' if kind == "order" else ""
        parts.append(
            f'<line x1="{x1 + width}" y1="{y1 + 16}" x2="{x2}" y2="{y2 + 16}" stroke="#555"'
            f'{dash} marker-end="url(#arrow)"/>'
        )
    for node, (x, y) in place.items():
        fill = STATE_COLOURS.get(graph.states.get(node, ""), "#ffffff")
        parts.append(
            f'<rect x="{x}" y="{y}" width="{width}" height="32" rx="6" fill="{fill}" '
            f'stroke="#333"><title>{escape(node)}</title></rect>'
            f'<text x="{x + 12}" y="{y + 20}">{escape(graph.labels[node])}</text>'
        )
    return "\n".join([*parts, "</svg>"]) + "\n"
