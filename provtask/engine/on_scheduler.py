"""What runs inside the Dask scheduler: telling the driver when a worker leaves."""

from __future__ import annotations

import time
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin


class WorkerDeparturePlugin(SchedulerPlugin):
    """Reports each worker's departure (closed, crashed or lost) on the run's event topic."""

    def __init__(self, run_id: str, topic: str) -> None:
        self.name = f"provtask-departures-{run_id}"
        self.topic = topic

    def remove_worker(self, scheduler: Any, worker: str, **kwargs: Any) -> None:
        scheduler.log_event(
            self.topic, {"op": "worker-left", "worker": worker, "time": time.time()}
        )
