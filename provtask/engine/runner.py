"""The engine's loop: drives one run of a DAG on Dask pools, routing messages to the parts.

::

    RunGraph ──ready──▶ Dispatcher ──client.map──▶ workers: execute_attempt
        ▲                                               │ value stays in worker memory
        │ succeed / fail / expand                       │ report ──Dask event──┐
        └──── Outcomes ◀── Engine loop ◀── inbox (messages.py) ◀─────────────┘
                 │  ▲ InFlight (lost, overdue)
                 │  └ Retries (failures.py) ──▶ Dispatcher
                 └──▶ RunRecorder ──▶ StoreWriter (batched transactions)

Task values never travel to the driver: downstream tasks receive upstream futures, and the
driver learns outcomes from small per-attempt reports. Lost attempts (a dead worker) show up
as errored futures, found by a periodic scan.
"""

from __future__ import annotations

import contextlib
import queue
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..clusters.pool import Pool
from ..states import AttemptStatus, RunStatus, TaskState
from .cache import Cache, CachePolicy
from .dispatch import Dispatcher
from .failures import Escalator, Retries
from .in_progress import running_on
from .messages import Cancel, PoolEvent
from .on_scheduler import WorkerDeparturePlugin
from .on_worker import RunPlugin, unpack_reports
from .outcomes import Outcomes
from .pools import Pools
from .progress import Progress
from .recorder import RunRecorder
from .rungraph import RunGraph
from .tracking import InFlight
from .worker_exits import WorkerExitPlugin

if TYPE_CHECKING:
    from ..dag import DAG

SCAN_INTERVAL = 2.0  # s between checks of in-flight futures for lost attempts
INBOX_TIMEOUT = 0.5  # s the loop waits for reports before doing its periodic chores
RELEASE_INTERVAL = 0.5  # s between hand-overs of unneeded futures to the client loop
HEARTBEAT_INTERVAL = 5.0  # s between run heartbeats in the store
TEND_INTERVAL = 1.0  # s between scaling and batch-job checks of the pools
PROGRESS_INTERVAL = 0.1  # s between progress snapshots
WORKER_REPORTS_WAIT = 1.0  # s at most for the reports of the workers present at the start


class Engine:
    """Runs one DAG to completion (or interruption) on the given pools."""

    def __init__(
        self,
        run_id: str,
        dag: DAG,
        params: dict[str, Any],
        pools: Pools,
        recorder: RunRecorder,
        inbox: queue.SimpleQueue,
        publish: Callable[[Progress], None],
        store_root: str,
        cache: CachePolicy | None = None,
    ) -> None:
        self.run_id = run_id
        self.dag = dag
        self.pools = pools
        self.recorder = recorder
        self.inbox = inbox
        self.publish = publish
        self.topic = f"provtask-{run_id}"
        self.graph = RunGraph(dag, params)
        self.cache = Cache(self.graph, recorder, store_root, cache)
        self.in_flight = InFlight()
        self.retries = Retries(self.graph, Escalator(pools.config))
        self.dispatch = Dispatcher(
            run_id,
            self.graph,
            pools,
            recorder,
            self.cache,
            self.in_flight,
            store_root,
            self._route_report,
        )
        self.outcomes = Outcomes(self.graph, recorder, self.in_flight, self.retries, self.dispatch)
        functions = tuple(self.dispatch.functions)
        self.worker_plugin = RunPlugin(run_id, self.topic, store_root, functions)
        self.scheduler_plugin = WorkerDeparturePlugin(run_id, self.topic)
        self.exit_plugin = WorkerExitPlugin(run_id, self.topic)
        self.workers: set[str] = set()
        self.attached_workers: set[str] = set()  # workers that set the run up as it attached
        self.cancel_reason: str | None = None

    # -- main loop --------------------------------------------------------------------------
    def run(self) -> RunStatus:
        self.recorder.add_tasks(list(self.graph.instances.values()))
        self.recorder.add_edges([(u, v, d["kind"]) for u, v, d in self.dag.graph.edges(data=True)])
        self.pools.attach(self._attach)
        self._hear_attached_workers()
        self._advance()
        next_scan = next_beat = next_publish = next_release = next_tend = time.monotonic()
        while self.graph.unfinished and self.cancel_reason is None:
            self._drain_inbox(timeout=INBOX_TIMEOUT)
            self.outcomes.stop_overrunning()
            self._advance()
            now = time.monotonic()
            if now >= next_release:
                self._let_go_of_released_futures()
                next_release = now + RELEASE_INTERVAL
            if now >= next_tend:
                self._tend_pools()
                next_tend = now + TEND_INTERVAL
            if now >= next_scan:
                for lost in self.in_flight.lost():
                    self.outcomes.lost(lost)
                next_scan = now + SCAN_INTERVAL
            if now >= next_beat:
                self.recorder.heartbeat(self.n_tasks)
                next_beat = now + HEARTBEAT_INTERVAL
            if now >= next_publish:
                self._publish()
                next_publish = now + PROGRESS_INTERVAL
        if self.cancel_reason is not None:
            self.abort(f"run interrupted: {self.cancel_reason}")
            status = RunStatus.INTERRUPTED
        else:
            ok = all(inst.state.ok for inst in self.graph.instances.values())
            status = RunStatus.SUCCESS if ok else RunStatus.FAILED
        self._publish()
        return status

    def close(self) -> None:
        """Detach from the caller's clients and mark workers as released."""
        self.cache.close()
        now = time.time()
        for worker in self.workers:
            self.recorder.worker_disconnected(worker, now)
        for pool in self.pools.all():
            for event in pool.release(now):
                self.recorder.job_event(pool.name, event.name, **event.columns)
        for pool in self.pools.all():
            # A cluster the run owns is closed next: its plugins go with it. A client the
            # caller gave is left as it was found.
            if pool.cluster is None and pool.client.status == "running":
                pool.client.unsubscribe_topic(self.topic)
                # A worker may be dying (one just killed to stop an attempt at its walltime).
                with contextlib.suppress(OSError):
                    pool.client.unregister_worker_plugin(self.worker_plugin.name)
                pool.client.unregister_scheduler_plugin(self.scheduler_plugin.name)

    @property
    def slots(self) -> int:
        """Threads of the workers connected now: at most this many tasks run at once."""
        return self.dispatch.slots

    @property
    def n_tasks(self) -> int:
        """Tasks known so far (map elements counted, map containers not)."""
        return sum(self.graph.counts.values())

    def _publish(self) -> None:
        self.publish(Progress.from_counts(self.graph.counts, self.pools.job_summary(), self.slots))

    def _attach(self, pool: Pool) -> None:
        """Hear a pool's events and install the run's plugins on its workers."""

        def handler(event: tuple[float, dict]) -> None:
            self.inbox.put(PoolEvent(pool, event[1]))

        pool.client.subscribe_topic(self.topic, handler)
        set_up = pool.client.register_plugin(self.worker_plugin)  # by worker address
        self.attached_workers.update(set_up or ())
        pool.client.register_plugin(self.scheduler_plugin)
        with contextlib.suppress(ValueError):  # a cluster without nannies: no exit codes
            pool.client.register_plugin(self.exit_plugin)

    def _hear_attached_workers(self) -> None:
        """Wait (briefly) for the reports of the workers that set the run up as its pools
        attached: the first submission then knows how many worker slots there are, and
        probes a new task name on every one of them (see ``Probing``). A report published
        before the scheduler had the run's subscription is read back from the scheduler."""
        deadline = time.monotonic() + WORKER_REPORTS_WAIT
        while self.attached_workers - self.workers and self.cancel_reason is None:
            for pool in self.pools.all():
                for _, event in pool.client.get_events(self.topic):
                    if event.get("op") == "worker":
                        self._route(pool, event)
            left = deadline - time.monotonic()
            if not self.attached_workers - self.workers or left <= 0:
                return
            self._drain_inbox(timeout=min(left, 0.01))

    # -- routing ----------------------------------------------------------------------------
    def _drain_inbox(self, timeout: float) -> None:
        try:
            message = self.inbox.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            if isinstance(message, Cancel):
                self.cancel_reason = message.reason
                return
            self._route(message.pool, message.report)
            try:
                message = self.inbox.get_nowait()
            except queue.Empty:
                return

    def _route(self, pool: Pool, report: dict[str, Any]) -> None:
        op = report["op"]
        if op == "attempts":
            for attempt in unpack_reports(report):
                self._route_report(attempt)
        elif op == "started":
            self.in_flight.started(report)
        elif op == "worker":
            if report["worker"] in self.workers:  # heard twice (see _hear_attached_workers)
                return
            self.workers.add(report["worker"])
            self.dispatch.threads[report["worker"]] = (pool, report["nthreads"])
            submitted_at = pool.worker_connected(report["batch_job_id"])
            end = pool.job_end(report["batch_job_id"], report["time"])
            self.dispatch.job_ends.connected(report["worker"], pool, end)
            self.recorder.worker_connected(report, pool.name, submitted_at)
        elif op in ("worker-oom", "worker-exit"):
            self.in_flight.lost_workers.note(report)
        elif op == "worker-left":
            self.in_flight.lost_workers.note(report)
            if why := self.dispatch.job_ends.left(report["worker"], report["time"]):
                self.in_flight.lost_workers.note({"worker": report["worker"], "job_walltime": why})
            self.retries.worker_left(report["worker"])
            self.dispatch.threads.pop(report["worker"], None)
            if report["worker"] in self.workers:
                self.workers.discard(report["worker"])
                self.recorder.worker_disconnected(report["worker"], report["time"])

    def _route_report(self, report: dict[str, Any]) -> None:
        self.outcomes.report(report)

    # -- state changes ----------------------------------------------------------------------
    def _advance(self) -> None:
        """Expand ready maps, submit ready tasks, and record every state change."""
        self.retries.ready += self.dispatch.probing.release(time.monotonic())
        while self.graph.ready or self.retries.ready:
            batch = self.retries.take()
            while self.graph.ready:
                inst = self.graph.ready.popleft()
                if inst.kind == "map":
                    self.recorder.add_tasks(self.graph.expand(inst))
                else:
                    batch.append(inst)
            if self.graph.new_edges:
                self.recorder.add_edges(self.graph.new_edges)
                self.graph.new_edges = []
            self.dispatch.submit(batch)
        self._record_changes()

    def _record_changes(self) -> None:
        changed, self.graph.changed = self.graph.changed, []
        for inst in {id(i): i for i in changed}.values():
            if inst.state is not TaskState.RUNNING or inst.kind == "map":
                self.recorder.task_state(inst)

    def _tend_pools(self) -> None:
        """Scale the pools and fail the tasks of a pool whose batch jobs cannot start."""
        now = time.time()  # recorded in the store, so wall-clock
        for pool in self.pools.all():
            for event in pool.tend(now):
                self.recorder.job_event(pool.name, event.name, **event.columns)
            if pool.broken is not None:
                stranded = [self.in_flight.forget(key)[0] for key in self.in_flight.keys_in(pool)]
                if stranded and pool.client.status == "running":
                    pool.client.cancel([inst.attempts.future for inst in stranded])
                for inst in stranded:
                    self.dispatch.cannot_run(inst, pool.broken)
        self.dispatch.job_ends.retire_expiring(now)
        self.retries.ready += self.dispatch.job_ends.release()  # placed again by _advance

    def _let_go_of_released_futures(self) -> None:
        """Drop the last references to released futures inside the client's event loop, where
        each release is a plain callback rather than a wake-up of the loop from this thread."""
        groups = _by_client(self.graph.released)
        self.graph.released = []  # now only the groups hold the futures
        for client, futures in groups:
            client.loop.add_callback(futures.clear)

    def abort(self, why: str) -> None:
        """Cancel in-flight attempts and mark every unfinished task cancelled."""
        in_flight = list(self.in_flight)
        groups = _by_client([inst.attempts.future for inst, _, _ in in_flight])
        running = running_on([client for client, _ in groups])  # started, worker by key
        for client, futures in groups:
            if client.status == "running":
                client.cancel(futures)
        for inst, _, _ in in_flight:
            started, worker = running.get(inst.attempts.key, (None, None))
            self.recorder.attempt_ended_without_report(
                inst, AttemptStatus.CANCELLED, None, why, started_at=started, worker=worker
            )
        self.in_flight.clear()
        self.graph.cancel_unfinished()
        self._record_changes()


def _by_client(futures: list[Any]) -> list[tuple[Any, list[Any]]]:
    groups: dict[int, tuple[Any, list[Any]]] = {}
    for future in futures:
        groups.setdefault(id(future.client), (future.client, []))[1].append(future)
    return list(groups.values())
