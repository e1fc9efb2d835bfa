"""What runs inside the Dask scheduler: telling the driver when a worker leaves, and whether
it ran out of memory as far as the cluster can tell; and keeping no copy of the run's events."""

from __future__ import annotations

import time
from typing import Any

from dask.utils import format_bytes
from distributed.diagnostics.plugin import SchedulerPlugin

# The nanny's event when it kills its worker for going over the memory limit.
NANNY_MEMORY_TOPIC = "worker-restart-memory"
# A worker lost (e.g. killed by the batch system's OOM killer) whose last reported memory
# use was above this share of its limit counts as out of memory.
OOM_RSS_FRACTION = 0.8


class WorkerDeparturePlugin(SchedulerPlugin):
    """Reports each worker's departure (closed, crashed or lost) on the run's event topic,
    and each worker killed for its memory use (``oom``: what the cluster saw). The run's
    events (its workers' reports) are not kept in the scheduler once sent."""

    def __init__(self, run_id: str, topic: str) -> None:
        self.name = f"provtask-departures-{run_id}"
        self.topic = topic
        self.scheduler: Any = None
        self.workers: dict[str, Any] = {}  # WorkerState by address, kept past its removal

    def start(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        self.workers = dict(scheduler.workers)

    async def close(self) -> None:  # the scheduler awaits it
        self._forget_events()

    def _forget_events(self) -> None:
        """Drop the scheduler's copies of the run's events once they are sent to the
        driver: it keeps the last 1,000 of every topic for as long as it lives, and the
        run's reports would stay in its memory after the run (~250 bytes per task)."""
        broker = getattr(self.scheduler, "_broker", None)  # not public: kept if it moves
        if broker is not None:
            broker.truncate(self.topic)

    def add_worker(self, scheduler: Any, worker: str) -> None:
        self.workers[worker] = scheduler.workers[worker]

    def remove_worker(self, scheduler: Any, worker: str, **kwargs: Any) -> None:
        state = self.workers.pop(worker, None)
        event = {"op": "worker-left", "worker": worker, "time": time.time()}
        rss = state.metrics.get("memory") if state is not None else None
        if rss and state.memory_limit and rss >= OOM_RSS_FRACTION * state.memory_limit:
            event["oom"] = (
                f"its last reported memory use was {format_bytes(rss)}, "
                f"{rss / state.memory_limit:.0%} of its {format_bytes(state.memory_limit)} limit"
            )
        scheduler.log_event(self.topic, event)

    def log_event(self, topic: str, msg: Any) -> None:
        if topic == self.topic:
            if msg.get("op") == "attempts":  # workers' other events stay, for a late listener
                self._forget_events()
            return
        if topic != NANNY_MEMORY_TOPIC or self.scheduler is None:
            return
        state = self.workers.get(msg["worker"])
        limit = f" of {format_bytes(state.memory_limit)}" if state and state.memory_limit else ""
        oom = f"its nanny killed it at {format_bytes(msg['rss'])}, over its memory limit{limit}"
        event = {"op": "worker-oom", "worker": msg["worker"], "oom": oom}
        self.scheduler.log_event(self.topic, event)
