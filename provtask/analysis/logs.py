"""What an attempt printed and how it failed: the data behind ``provtask logs``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import NotFoundError
from ..suggest import did_you_mean

if TYPE_CHECKING:
    from ..store import Store

STREAMS = ("stdout", "stderr", "traceback")


@dataclass(frozen=True)
class AttemptLog:
    """One attempt of a task: where it ran, and its captured streams and traceback."""

    task_id: str
    attempt: int
    attempts: int
    status: str
    worker: str | None
    node: str | None
    streams: dict[str, str]
    ended: bool

    def header(self) -> str:
        where = self.node or self.worker or "no worker"
        return f"{self.task_id} attempt {self.attempt}/{self.attempts} {self.status} on {where}"


def check_task(store: Store, run_id: str, task_id: str) -> str:
    """The task's state; a clear NotFoundError for a task id the run does not have."""
    row = store.conn.execute(
        "SELECT state FROM tasks WHERE run_id = ? AND task_id = ?", (run_id, task_id)
    ).fetchone()
    if row is None:
        known = [
            r[0]
            for r in store.conn.execute("SELECT task_id FROM tasks WHERE run_id = ?", (run_id,))
        ]
        raise NotFoundError(
            f"run {run_id} has no task {task_id!r}{did_you_mean(task_id, known)}; "
            f"list them with 'provtask tasks {run_id}'"
        )
    return row[0]


def attempt_log(store: Store, run: str, task_id: str, attempt: int | None = None) -> AttemptLog:
    """The streams of one attempt of a task (its last one unless ``attempt`` is given).

    An MPI attempt's streams are read in full from their artifacts; a Python attempt's are the
    tail its worker captured."""
    run_id = store.resolve_run(run)
    state = check_task(store, run_id, task_id)
    frame = store.attempts(run_id, task=task_id).sort_values("attempt")
    if frame.empty:
        raise NotFoundError(
            f"task {task_id!r} of run {run_id} has no attempts (state {state}): "
            + ("it was reused from the cache" if state == "cached" else "it did not run")
        )
    numbers = [int(n) for n in frame["attempt"]]
    chosen = numbers[-1] if attempt is None else attempt
    if chosen not in numbers:
        raise NotFoundError(
            f"task {task_id!r} of run {run_id} has no attempt {chosen}; it has {numbers}"
        )
    row = frame[frame["attempt"] == chosen].iloc[0]
    streams = {name: _text(row.get(name)) for name in STREAMS}
    for name in ("stdout", "stderr"):
        digest = row.get(f"{name}_hash")
        if isinstance(digest, str):
            streams[name] = str(store.load_artifact(digest))
    return AttemptLog(
        task_id=task_id,
        attempt=chosen,
        attempts=numbers[-1],
        status=str(row["status"]),
        worker=row["worker"] if isinstance(row["worker"], str) else None,
        node=row["node"] if isinstance(row.get("node"), str) else None,
        streams=streams,
        ended=str(row["status"]) != "running",
    )


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
