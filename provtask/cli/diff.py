"""``provtask diff``: what differs between two runs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .common import friendly_errors, json_option, open_store, store_option
from .jsonout import echo_json

_SECTIONS = (
    ("params", "name"),
    ("code", "component"),
    ("dag_source", "origin"),
    ("clusters", "origin"),
    ("versions", "package"),
    ("env", "name"),
    ("outputs", "task_id"),
)


@click.command()
@click.argument("run_a", metavar="RUN_A")
@click.argument("run_b", metavar="[RUN_B]", default="latest")
@json_option
@store_option
@friendly_errors
def diff(run_a: str, run_b: str, as_json: bool, store_path: Path) -> None:
    """What differs between RUN_A and RUN_B [latest]: params, code components, DAG source,
    clusters config, package versions, recorded environment and per-task output hashes."""
    from ..analysis.diff import diff_runs

    found = diff_runs(open_store(store_path), run_a, run_b)
    if as_json:
        echo_json(found)
        return
    _print_table(found)


def _print_table(found: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    rows = [
        (section, str(item[key]) + _tasks(item), _short(item["a"]), _short(item["b"]))
        for section, key in _SECTIONS
        for item in found[section]
    ]
    console = Console(width=None if sys.stdout.isatty() else 200)
    if not rows:
        console.print(f"runs {found['run_a']} and {found['run_b']} do not differ")
        return
    table = Table("", "what", f"run {found['run_a']}", f"run {found['run_b']}", box=None)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for section in ("dag_source", "clusters"):
        for item in found[section]:
            console.print("\n".join(item["diff"]), markup=False, highlight=False)


def _tasks(item: dict[str, Any]) -> str:
    return f" ({', '.join(item['tasks'])})" if "tasks" in item else ""


def _short(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        return text[:12] + "…"
    return text
