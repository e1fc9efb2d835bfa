"""The ``provtask`` command: a thin layer over the Python API (only this package knows click).

Each module holds one family of commands; they are registered on ``main`` here.
"""

from __future__ import annotations

import click

from .clusters import clusters
from .diff import diff
from .doctor import doctor
from .graph import graph
from .jobs import jobs
from .logs import logs
from .query import efficiency_command, runs, show, tasks
from .replay import replay
from .report import lineage, report
from .run import run
from .sharing import export, import_command
from .watch import watch
from .why import why


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="provtask")
def main() -> None:
    """Run DAGs of Python and MPI tasks with full provenance."""


_COMMANDS = (run, runs, show, tasks, efficiency_command, export, report, lineage, clusters)
for _command in (*_COMMANDS, import_command, why, replay, diff, doctor, jobs, logs, watch, graph):
    main.add_command(_command)

__all__ = ["main"]
