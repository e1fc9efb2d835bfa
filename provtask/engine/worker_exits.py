"""How a worker process ended, when it died under a task: its exit status or signal.

A nanny plugin hears each worker process's exit where the nanny runs (the driver for the
embedded cluster, the batch job otherwise) and reports it on the run's event topic, so a
lost attempt says ``its worker process was killed by signal 11 (SIGSEGV)`` instead of
Dask's generic KilledWorker text.
"""

from __future__ import annotations

import signal
from typing import Any

from distributed.diagnostics.plugin import NannyPlugin


def describe_exit(exitcode: int) -> str:
    """``killed by signal 11 (SIGSEGV)``, ``exited with status 139 (128 + 11: SIGSEGV, as
    a shell reports a signal)``, ``exited with status 3``."""
    if exitcode < 0:
        return f"was killed by signal {-exitcode} ({_signal_name(-exitcode)})"
    text = f"exited with status {exitcode}"
    if 128 < exitcode < 128 + 65:
        number = exitcode - 128
        text += f" (128 + {number}: {_signal_name(number)}, as a shell reports a signal)"
    return text


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class WorkerExitPlugin(NannyPlugin):
    """Reports ``{"op": "worker-exit", "worker": address, "exit": text}`` when a worker
    process of a nanny ends with a non-zero status."""

    def __init__(self, run_id: str, topic: str) -> None:
        self.name = f"provtask-exits-{run_id}"
        self.topic = topic

    def setup(self, nanny: Any) -> None:
        original = nanny._on_worker_exit  # looked up per exit, so this sees every process
        topic = self.topic

        async def on_exit(exitcode: int) -> Any:
            if exitcode and nanny.worker_address:
                what = f"its worker process {describe_exit(exitcode)}"
                event = {"op": "worker-exit", "worker": nanny.worker_address, "exit": what}
                nanny.log_event(topic, event)
            return await original(exitcode)

        nanny._on_worker_exit = on_exit
