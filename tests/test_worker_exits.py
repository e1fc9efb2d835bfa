"""A worker process that dies under a task: the attempt says how it ended."""

from __future__ import annotations

import os
import signal

import pytest

from provtask import DAG, Store, task
from provtask.engine.worker_exits import describe_exit


@pytest.mark.parametrize(
    ("exitcode", "text"),
    [
        (-11, "was killed by signal 11 (SIGSEGV)"),
        (139, "exited with status 139 (128 + 11: SIGSEGV, as a shell reports a signal)"),
        (3, "exited with status 3"),
    ],
)
def test_exit_statuses_read_as_a_user_knows_them(exitcode, text):
    assert describe_exit(exitcode) == text


@task
def crash(how: str) -> str:
    if how == "exit":
        os._exit(139)  # what a segfaulting MD engine's wrapper script returns
    os.kill(os.getpid(), signal.SIGSEGV)
    return how


def test_a_crashed_worker_is_recorded_with_its_exit_status_or_signal(store_dir):
    with DAG("crashes") as dag:
        crash.map(["exit", "segv"])
    result = dag.run(store=store_dir, n_workers=2)  # the embedded cluster, with nannies
    attempts = Store(store_dir).attempts(result.run_id).set_index("task_id")
    assert set(attempts["status"]) == {"lost"}
    assert attempts.loc["crash[0]", "exc_message"].startswith(
        "its worker process exited with status 139 (128 + 11: SIGSEGV"
    )
    assert attempts.loc["crash[1]", "exc_message"].startswith(
        "its worker process was killed by signal 11 (SIGSEGV)"
    )
