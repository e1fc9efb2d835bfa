"""An attempt's report as the worker sends it: its store rows built once, on the worker.

While an attempt runs, the worker collects what it measures in a dict (``execute_attempt``,
``captured``, GPU binding, an MPI launch); :func:`finished_report` turns it into the report the
driver gets: the attempt's finished columns as one tuple in the order of
:data:`ATTEMPT_COLUMNS` (or :data:`MPI_ATTEMPT_COLUMNS`), and its artifacts' rows in the order
of :data:`ARTIFACT_COLUMNS`. The driver's recorder queues them as they are
(``RunRecorder.attempt_finished``), and the engine reads the values it acts on from the row
by position (``STATUS``, ``STARTED``, ...): no per-column work under the driver's interpreter
lock, and each value travels once.
"""

from __future__ import annotations

from typing import Any

from ..store.artifacts import ArtifactMeta

# The attempts row's columns a finished attempt sets, and the worker's names for them.
_FINISHED = (
    ("status", "status"),
    ("started_at", "started"),
    ("ended_at", "ended"),
    ("function_ended_at", "function_ended"),
    ("worker", "worker"),
    ("hostname", "hostname"),
    ("pid", "pid"),
    ("node", "node"),
    ("batch_job_id", "batch_job_id"),
    ("cpu_time", "cpu_time"),
    ("peak_rss", "peak_rss"),
    ("exc_type", "exc_type"),
    ("exc_message", "exc_message"),
    ("traceback", "traceback"),
    ("stdout", "stdout"),
    ("stderr", "stderr"),
    ("output_hash", "output_hash"),
    ("n_items", "n_items"),
    ("failure_cause", "failure_cause"),
    ("gpu_ids", "gpu_ids"),
)
ATTEMPT_COLUMNS = tuple(column for column, _ in _FINISHED)
_REPORT_KEYS = tuple(key for _, key in _FINISHED)
# An MPI launch's own columns (``report["mpi"]``, see provtask.mpi.attempt), after those.
MPI_COLUMNS = (
    "mpi_command",
    "mpi_launcher",
    "mpi_ranks",
    "mpi_nodes",
    "mpi_node_list",
    "exit_code",
    "mpi_wall_time",
    "stdout_hash",
    "stderr_hash",
)
MPI_ATTEMPT_COLUMNS = ATTEMPT_COLUMNS + MPI_COLUMNS
ARTIFACT_COLUMNS = (*ArtifactMeta._fields, "created_at")


# Positions in a row of what the engine reads.
STATUS = ATTEMPT_COLUMNS.index("status")
STARTED = ATTEMPT_COLUMNS.index("started_at")
ENDED = ATTEMPT_COLUMNS.index("ended_at")
FUNCTION_ENDED = ATTEMPT_COLUMNS.index("function_ended_at")
EXC_TYPE = ATTEMPT_COLUMNS.index("exc_type")
EXC_MESSAGE = ATTEMPT_COLUMNS.index("exc_message")
OUTPUT_HASH = ATTEMPT_COLUMNS.index("output_hash")
N_ITEMS = ATTEMPT_COLUMNS.index("n_items")
FAILURE_CAUSE = ATTEMPT_COLUMNS.index("failure_cause")


def finished_report(report: dict[str, Any]) -> dict[str, Any]:
    """The report sent to the driver for the attempt the worker measured in ``report``:
    ``key``, ``label``, ``row`` (the attempt's columns, see :func:`row_columns`) and
    ``artifacts`` (rows of the output's artifact and an MPI launch's streams, created when
    the attempt ended)."""
    get = report.get
    row = tuple(map(get, _REPORT_KEYS))
    mpi = get("mpi")
    if mpi is not None:
        row += tuple(map(mpi.get, MPI_COLUMNS))
    ended = report["ended"]
    stored: list[ArtifactMeta] = [*get("streams", ())]
    if get("artifact") is not None:
        stored.insert(0, report["artifact"])
    return {
        "key": report["key"],
        "label": get("label"),
        "row": row,
        "artifacts": tuple((*meta, ended) for meta in stored),
    }


def row_columns(row: tuple) -> tuple[str, ...]:
    """The columns of a finished report's ``row``."""
    return ATTEMPT_COLUMNS if len(row) == len(ATTEMPT_COLUMNS) else MPI_ATTEMPT_COLUMNS
