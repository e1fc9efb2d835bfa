"""``provtask doctor``: check a store for damage, and repair what is safe to repair."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .common import friendly_errors, json_option, store_option

if TYPE_CHECKING:
    from ..store.doctor import Checkup


@click.command()
@click.option(
    "--repair",
    "fix",
    is_flag=True,
    help="Apply the repair each problem names; without it nothing is changed.",
)
@json_option
@store_option
@friendly_errors
def doctor(fix: bool, as_json: bool, store_path: Path) -> None:
    """Check a store: database integrity, schema, artifact files and their hashes, orphan
    files, runs whose driver died. Exits 1 while a problem remains."""
    from ..store.doctor import check_store, repair

    checkup = check_store(store_path)
    if fix:
        checkup = repair(checkup)
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(checkup), indent=2, default=str))
    else:
        _print(checkup, fix)
    if not checkup.healthy:
        raise SystemExit(1)


def _print(checkup: Checkup, fix: bool) -> None:
    checked = ", ".join(f"{name} {count}" for name, count in checkup.checked.items())
    click.echo(f"store {checkup.store} (database {checkup.database})")
    click.echo(f"checked: {checked or 'nothing readable'}")
    for problem in checkup.repaired:
        click.echo(f"repaired {problem.kind} {problem.subject}: {problem.repair}")
    for problem in checkup.problems:
        click.echo(f"✗ {problem.kind} {problem.subject}: {problem.detail}")
        if problem.repair:
            click.echo(f"    --repair will {problem.repair}")
    if checkup.healthy:
        click.echo("no problems found" if not checkup.repaired else "no problems left")
        return
    fixable = sum(1 for p in checkup.problems if p.repair)
    summary = f"{len(checkup.problems)} problem(s)"
    if fixable and not fix:
        summary += f"; 'provtask doctor --repair' fixes {fixable} of them"
    click.echo(summary)
