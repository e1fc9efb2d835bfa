"""Walltimes of Python tasks, enforced by the driver.

A worker announces when an attempt with a walltime starts; the driver keeps its deadline
(on its own monotonic clock, so clock skew between hosts cannot stop a task early) and, when
it passes, cancels the attempt and has the worker's nanny kill the worker process: a Python
thread cannot be stopped any other way. The nanny starts a fresh worker at once.
"""

from __future__ import annotations

import heapq
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

NANNY_TIMEOUT = 10.0  # seconds a nanny has to answer the request to kill its worker


class Deadlines:
    """Attempts that must end by a given time, soonest first."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, str, str, float]] = []

    def start(self, key: str, worker: str, walltime: float) -> None:
        """The attempt ``key`` started on ``worker`` now and may run ``walltime`` seconds."""
        heapq.heappush(self._heap, (time.monotonic() + walltime, key, worker, time.time()))

    def due(self) -> list[tuple[str, str, float]]:
        """(key, worker, start time) of the attempts whose deadline has passed."""
        now = time.monotonic()
        expired = []
        while self._heap and self._heap[0][0] <= now:
            _, key, worker, started = heapq.heappop(self._heap)
            expired.append((key, worker, started))
        return expired


def stop_attempt(client: Any, future: Any, worker: str) -> tuple[bool, str | None]:
    """Cancel an attempt and kill the worker process running it. Returns whether the worker
    is being killed (it will leave the cluster), and what went wrong if anything."""
    client.cancel([future])  # first, so that Dask does not run it again elsewhere
    try:
        killed = _on_nanny(client, worker, NANNY_TIMEOUT)
    except KeyError:
        return False, None  # the worker is already gone
    except (OSError, TimeoutError) as exc:  # CommClosedError is an OSError
        return False, (
            f"its worker {worker} could not be reached to stop it ({type(exc).__name__}: {exc}), "
            "so the task may run on there until it returns"
        )
    if not killed:
        return False, (
            f"its worker {worker} has no nanny to kill it, so the task may run on there until "
            "it returns; start workers with a nanny (the default) to have it stopped"
        )
    return True, None


def _on_nanny(client: Any, worker: str, timeout: float) -> dict[str, int | None]:
    """Kill ``worker``'s process through its nanny, waiting at most ``timeout`` seconds: a
    nanny that does not answer (stopped, or its host hung) must not stall the run."""
    caller = ThreadPoolExecutor(max_workers=1, thread_name_prefix="provtask-walltime-kill")
    try:
        call = caller.submit(client.run, _kill_worker_process, workers=[worker], nanny=True)
        try:
            return call.result(timeout)
        except TimeoutError:
            raise TimeoutError(f"no answer from its nanny within {timeout:.0f} s") from None
    finally:
        caller.shutdown(wait=False)


def _kill_worker_process(dask_worker: Any) -> int | None:
    """Runs in the nanny: kill its worker process (the nanny then starts a new one)."""
    process = dask_worker.process and dask_worker.process.process
    if process is None or process.pid is None:
        return None
    os.kill(process.pid, signal.SIGKILL)
    return process.pid
