"""The ``provtask`` command: a thin layer over the Python API (only this package knows click).

Each module holds one family of commands; they are registered on ``main`` here.
"""

from __future__ import annotations

import click

from .cache import replay, why
from .clusters import clusters
from .doctor import doctor
from .jobs import jobs
from .query import efficiency_command, runs, show, tasks
from .report import lineage, report
from .run import run
from .sharing import export, import_command


@click.group()
@click.version_option(package_name="provtask")
def main() -> None:
    """Run DAGs of Python and MPI tasks with full provenance."""


_COMMANDS = (run, runs, show, tasks, efficiency_command, export, report, lineage, clusters)
for _command in (*_COMMANDS, import_command, why, replay, doctor, jobs):
    main.add_command(_command)

__all__ = ["main"]
