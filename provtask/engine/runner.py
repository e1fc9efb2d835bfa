"""The engine: drives one run of a DAG on Dask pools and records its provenance.

::

    RunGraph ──ready──▶ Engine._submit ──client.map──▶ workers: execute_attempt
        ▲                                                  │ value stays in worker memory
        │ succeed / fail / expand                          │ report ──Dask event──┐
        └──────── Engine._on_report ◀── inbox (queue) ◀────────────────────────┘
                         │
                         └──▶ RunRecorder ──▶ StoreWriter (batched transactions)

Task values never travel to the driver: downstream tasks receive upstream futures, and the
driver learns outcomes from small per-attempt reports. Lost attempts (a dead worker) show up
as errored futures, found by a periodic scan.
"""

from __future__ import annotations

import contextlib
import functools
import queue
import time
import traceback
from collections import Counter
from collections.abc import Callable
from typing import Any

from ..dag import DAG
from ..errors import BatchJobError, ResourceError
from ..labels import template_of
from ..mpi.call import worker_function
from ..states import AttemptStatus, RunStatus, TaskState
from ..tasks import TaskDef
from .batching import Durations, Picked, Probing, take_picks
from .cache import Cache, CachePolicy, load_on_worker
from .chains import Chains, Hop, Segment, rider_key
from .failures import Escalator, LostWorkers, reported_cause
from .in_progress import running_on
from .on_scheduler import WorkerDeparturePlugin
from .on_worker import AttemptCall, RunPlugin, execute_attempt, execute_batch, execute_chain
from .pools import Pool, Pools
from .progress import Progress
from .recorder import RunRecorder
from .rungraph import Instance, RunGraph
from .walltime import Deadlines, stop_attempt
from .worker_exits import WorkerExitPlugin

SCAN_INTERVAL = 2.0  # s between checks of in-flight futures for lost attempts
INBOX_TIMEOUT = 0.5  # s the loop waits for reports before doing its periodic chores
RELEASE_INTERVAL = 0.5  # s between hand-overs of unneeded futures to the client loop
HEARTBEAT_INTERVAL = 5.0  # s between run heartbeats in the store
TEND_INTERVAL = 1.0  # s between scaling and batch-job checks of the pools
REPORT_GRACE = 30.0  # s a finished future may wait for its report before it counts as lost
PROGRESS_INTERVAL = 0.1  # s between progress snapshots


_BATCH_ERROR = f"{BatchJobError.__module__}.{BatchJobError.__qualname__}"


class Cancel:
    """Inbox message: stop the run."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


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
        self.store_root = store_root
        self.store_is_current = False  # whether the store has every output reported so far
        self.functions: dict[Callable, int] = {}
        self.callables: dict[int, Callable] = {}  # by id of the TaskDef
        for inst in self.graph.instances.values():
            self.functions.setdefault(self._callable(inst.task), len(self.functions))
        self.worker_plugin = RunPlugin(run_id, self.topic, store_root, tuple(self.functions))
        self.scheduler_plugin = WorkerDeparturePlugin(run_id, self.topic)
        self.exit_plugin = WorkerExitPlugin(run_id, self.topic)
        self.in_flight: dict[str, tuple[Instance, int, Pool]] = {}  # by key
        self.unreported_since: dict[str, float] = {}
        self.lost_since: dict[str, float] = {}  # lost attempts whose cause is not known yet
        self.deadlines = Deadlines()
        self.held: dict[str, list[Instance]] = {}  # retries waiting for a worker to be gone
        self.lost_workers = LostWorkers()
        self.escalator = Escalator(pools.config)
        self.workers: set[str] = set()
        self.threads: dict[str, tuple[Pool, int]] = {}  # worker address: its pool, threads
        self.durations = Durations()
        self.probing = Probing(self.durations)
        self.chains = Chains(self.durations)
        self.batches = 0  # batches submitted so far: arguments may then hold batch picks
        self.retry: list[Instance] = []
        self.counts: Counter[TaskState] = Counter()
        self.seen: dict[int, TaskState] = {}
        self.unfinished = 0
        self.cancel_reason: str | None = None

    # -- main loop --------------------------------------------------------------------------
    def run(self) -> RunStatus:
        self.recorder.add_tasks(list(self.graph.instances.values()))
        self.recorder.add_edges([(u, v, d["kind"]) for u, v, d in self.dag.graph.edges(data=True)])
        self._note_changes(list(self.graph.instances.values()))
        self.pools.attach(self._attach)
        self._advance()
        next_scan = next_beat = next_publish = next_release = next_tend = time.monotonic()
        while self.unfinished and self.cancel_reason is None:
            self._drain_inbox(timeout=INBOX_TIMEOUT)
            self._stop_overrunning_attempts()
            self._advance()
            now = time.monotonic()
            if now >= next_release:
                self._let_go_of_released_futures()
                next_release = now + RELEASE_INTERVAL
            if now >= next_tend:
                self._tend_pools()
                next_tend = now + TEND_INTERVAL
            if now >= next_scan:
                self._scan_in_flight()
                next_scan = now + SCAN_INTERVAL
            if now >= next_beat:
                self.recorder.heartbeat(self.n_tasks)
                next_beat = now + HEARTBEAT_INTERVAL
            if now >= next_publish:
                self.publish(
                    Progress.from_counts(self.counts, self.pools.job_summary(), self.slots)
                )
                next_publish = now + PROGRESS_INTERVAL
        if self.cancel_reason is not None:
            self.abort(f"run interrupted: {self.cancel_reason}")
            status = RunStatus.INTERRUPTED
        else:
            ok = all(inst.state.ok for inst in self.graph.instances.values())
            status = RunStatus.SUCCESS if ok else RunStatus.FAILED
        self.publish(Progress.from_counts(self.counts, self.pools.job_summary(), self.slots))
        return status

    def close(self) -> None:
        """Detach from the pools and mark workers as released."""
        self.cache.close()
        now = time.time()
        for worker in self.workers:
            self.recorder.worker_disconnected(worker, now)
        for pool in self.pools.all():
            for event in pool.release(now):
                self.recorder.job_event(pool.name, event.name, **event.columns)
        for pool in self.pools.all():
            if pool.client.status == "running":
                pool.client.unsubscribe_topic(self.topic)
                # A worker may be dying (one just killed to stop an attempt at its walltime).
                with contextlib.suppress(OSError):
                    pool.client.unregister_worker_plugin(self.worker_plugin.name)
                pool.client.unregister_scheduler_plugin(self.scheduler_plugin.name)

    @property
    def slots(self) -> int:
        """Threads of the workers connected now: at most this many tasks run at once."""
        return sum(n for _, n in self.threads.values())

    @property
    def n_tasks(self) -> int:
        """Tasks known so far (map elements counted, map containers not)."""
        return sum(self.counts.values())

    def _attach(self, pool: Pool) -> None:
        """Hear a pool's events and install the run's plugins on its workers."""

        def handler(event: tuple[float, dict]) -> None:
            self.inbox.put((pool, event[1]))

        pool.client.subscribe_topic(self.topic, handler)
        pool.client.register_plugin(self.worker_plugin)
        pool.client.register_plugin(self.scheduler_plugin)
        with contextlib.suppress(ValueError):  # a cluster without nannies: no exit codes
            pool.client.register_plugin(self.exit_plugin)

    def _drain_inbox(self, timeout: float) -> None:
        try:
            message = self.inbox.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            if isinstance(message, Cancel):
                self.cancel_reason = message.reason
                return
            pool, report = message
            if report["op"] == "attempts":
                for attempt in report["reports"]:
                    self._on_report(attempt)
            elif report["op"] == "worker":
                self.workers.add(report["worker"])
                self.threads[report["worker"]] = (pool, report["nthreads"])
                submitted_at = pool.worker_connected(report["batch_job_id"])
                self.recorder.worker_connected(report, pool.name, submitted_at)
            elif report["op"] == "started":
                self._on_started(report)
            elif report["op"] in ("worker-oom", "worker-exit"):
                self.lost_workers.note(report)
            elif report["op"] == "worker-left":
                self.lost_workers.note(report)
                self.retry.extend(self.held.pop(report["worker"], []))
                self.threads.pop(report["worker"], None)
                if report["worker"] in self.workers:
                    self.workers.discard(report["worker"])
                    self.recorder.worker_disconnected(report["worker"], report["time"])
            try:
                message = self.inbox.get_nowait()
            except queue.Empty:
                return

    # -- state changes ----------------------------------------------------------------------
    def _advance(self) -> None:
        """Expand ready maps, submit ready tasks, and record every state change."""
        self.retry += self.probing.release(time.monotonic())
        while self.graph.ready or self.retry:
            batch = self.retry
            self.retry = []
            while self.graph.ready:
                inst = self.graph.ready.popleft()
                if inst.kind == "map":
                    children = self.graph.expand(inst)
                    self.recorder.add_tasks(children)
                    self._note_changes(children)
                else:
                    batch.append(inst)
            if self.graph.new_edges:
                self.recorder.add_edges(self.graph.new_edges)
                self.graph.new_edges = []
            self._submit(batch)
        self._record_changes()

    def _note_changes(self, instances: list[Instance]) -> None:
        """Count newly known instances in the progress and in the unfinished total."""
        for inst in instances:
            if inst.seq not in self.seen:
                self.seen[inst.seq] = inst.state
                self.unfinished += not inst.state.finished
                if inst.counted:
                    self.counts[inst.state] += 1

    def _record_changes(self) -> None:
        changed, self.graph.changed = self.graph.changed, []
        for inst in {id(i): i for i in changed}.values():
            previous = self.seen.get(inst.seq)
            if previous is None:
                self._note_changes([inst])
                previous = inst.state
            if previous is not inst.state:
                self.seen[inst.seq] = inst.state
                if inst.state.finished and not previous.finished:
                    self.unfinished -= 1
                    self.graph.release_data(inst)
                if inst.counted:
                    self.counts[previous] -= 1
                    self.counts[inst.state] += 1
            if inst.state is not TaskState.RUNNING or inst.kind == "map":
                self.recorder.task_state(inst)

    # -- submission -------------------------------------------------------------------------
    def _submit(self, batch: list[Instance]) -> None:
        # One client.map per pool, number of arguments and worker resources; its columns
        # are the arguments. Tasks whose output is in the store become cached instead.
        riders = [inst for inst in batch if inst.chain is not None]
        batch = self.cache.take_hits(batch)
        if riders:
            batch = self._board(riders, batch)
        slots = sum(n for _, n in self.threads.values())
        batch = self.probing.admit(batch, slots, time.monotonic())
        self.store_is_current = False
        groups: dict[tuple, tuple[Pool, list[Instance]]] = {}
        for inst in batch:
            pool = self.pools.pool_for(inst.task)
            arity = len(inst.args) + len(inst.kwargs)
            resources = pool.task_resources(inst.task)
            group_key = (id(pool), arity, tuple(sorted(resources.items())) if resources else ())
            groups.setdefault(group_key, (pool, []))[1].append(inst)
        for pool, instances in groups.values():
            calls, rows = [], []
            load = functools.partial(self._input_future, pool=pool)
            for inst in instances:
                inst.attempt += 1
                inst.key = f"{inst.task.name}-{self.run_id}-{inst.seq}.{inst.attempt}"
                if inst.attempt == 1:
                    self.recorder.task_submitted(inst, pool.name)
                    self.graph.set_state(inst, TaskState.RUNNING)
                else:
                    self.recorder.attempt_submitted(inst, pool.name)
                if pool.broken is not None:
                    self._cannot_run(inst, pool.broken)
                    continue
                function = self.functions[self._callable(inst.task)]
                # The driver enforces walltimes of Python tasks; MPI tasks enforce their own.
                announce = inst.task.kind == "python" and inst.task.resources.walltime is not None
                arguments = self.graph.resolve((*inst.args, *inst.kwargs.values()), load)
                batch_picks: tuple = ()
                if self.batches:
                    arguments, batch_picks = take_picks(arguments)
                calls.append(
                    AttemptCall(
                        self.run_id,
                        function,
                        inst.key,
                        inst.picks,
                        tuple(inst.kwargs),
                        announce,
                        batch_picks,
                        template_of(inst.task, inst.kind),
                    )
                )
                rows.append(arguments)
                self.in_flight[inst.key] = (inst, inst.attempt, pool)
                pool.demand += pool.job_share(inst.task)
            if calls:
                self._send(pool, calls, rows)

    def _board(self, riders: list[Instance], ready: list[Instance]) -> list[Instance]:
        """Riders of fused chains that are ready take their place in flight (see .chains);
        returns the other ready tasks. A rider found cached leaves its chain."""
        running = {id(inst) for inst in ready}
        for inst in riders:
            if id(inst) not in running:  # cached, or its cache_key function failed
                self.chains.leave(inst)
        others = []
        for inst in ready:
            if inst.chain is None or inst.attempt:
                others.append(inst)
                continue
            segment = inst.chain
            key, report = self.chains.board(inst)
            upstream = segment.members[segment.positions[inst.seq] - 1]
            inst.attempt, inst.key, inst.batch_index = 1, key, None
            self.recorder.task_submitted(inst, segment.pool.name, upstream.ended_at)
            self.graph.set_state(inst, TaskState.RUNNING)
            self.in_flight[key] = (inst, 1, segment.pool)
            segment.pool.demand += segment.pool.job_share(inst.task)
            inst.future = segment.future
            if report is not None:
                self._on_report(report)
        return others

    def _send(self, pool: Pool, calls: list[AttemptCall], rows: list[tuple]) -> None:
        """Submit attempts of one pool, arity and resources: small tasks in batches
        (see .batching), heads of chains of small tasks with their chain (see .chains), the
        others one Dask task each."""
        alone: list[int] = []
        batchable: dict[str, list[int]] = {}
        for i, call in enumerate(calls):
            inst = self.in_flight[call.key][0]
            inst.batch_index = None
            if _may_batch(inst, call, pool):
                batchable.setdefault(inst.task.name, []).append(i)
            else:
                alone.append(i)
        slots = sum(n for p, n in self.threads.values() if p is pool)
        chunks: list[list[int]] = []
        for name, positions in batchable.items():
            size = self.durations.batch_size(name, len(positions), slots)
            if size == 1:
                alone += positions
                continue
            chunks += [positions[start : start + size] for start in range(0, len(positions), size)]
        if chunks:
            self._send_batches(pool, chunks, calls, rows)
        alone = [i for i in alone if not self._send_chain(pool, calls[i], rows[i])]
        if not alone:
            return
        keys = [calls[i].key for i in alone]
        columns = list(zip(*(rows[i] for i in alone), strict=True)) if rows[alone[0]] else []
        futures = pool.client.map(
            execute_attempt,
            [calls[i] for i in alone],
            *columns,
            key=keys,
            pure=False,
            resources=pool.task_resources(self.in_flight[keys[0]][0].task),
        )
        for key, future in zip(keys, futures, strict=True):
            self.in_flight[key][0].future = future

    def _send_batches(
        self, pool: Pool, chunks: list[list[int]], calls: list[AttemptCall], rows: list[tuple]
    ) -> None:
        """One Dask task per chunk of attempts (positions in ``calls`` and ``rows``), all
        submitted in one ``client.map``."""
        keys = []
        for chunk in chunks:
            first = self.in_flight[calls[chunk[0]].key][0]
            keys.append(f"batch-{first.task.name}-{self.run_id}-{first.seq}.{len(chunk)}")
        futures = pool.client.map(
            execute_batch,
            keys,
            [tuple(calls[i] for i in chunk) for chunk in chunks],
            [tuple(rows[i] for i in chunk) for chunk in chunks],
            key=keys,
            pure=False,
        )
        self.batches += len(chunks)
        for chunk, future in zip(chunks, futures, strict=True):
            for index, position in enumerate(chunk):
                inst = self.in_flight[calls[position].key][0]
                inst.future, inst.batch_index = future, index

    def _send_chain(self, pool: Pool, head_call: AttemptCall, head_row: tuple) -> bool:
        """Send a task with the small tasks that follow it in a chain, as one Dask task;
        False if it cannot head a chain or nothing can follow it."""
        head = self.in_flight[head_call.key][0]
        if head_call.announce or not _chainable(head, pool):
            return False
        riders = self.chains.riders_after(
            head, lambda inst: self.pools.pool_for(inst.task) is pool and _chainable(inst, pool)
        )
        if not riders:
            return False
        segment_key = f"chain-{head.task.name}-{self.run_id}-{head.seq}.{head.attempt}"
        segment = Segment([head, *riders], segment_key, pool)

        def load(upstream: Instance) -> Any:
            index = segment.positions.get(upstream.seq)
            return Hop(index) if index is not None else self._input_future(upstream, pool)

        calls, rows, hops = [head_call], [head_row], [()]
        for rider in riders:
            arguments = self.graph.resolve((*rider.args, *rider.kwargs.values()), load)
            arguments, places = take_picks(arguments, Hop)
            batch_picks: tuple = ()
            if self.batches:
                arguments, batch_picks = take_picks(arguments)
            function = self.functions[self._callable(rider.task)]
            key = rider_key(rider, segment)
            calls.append(
                AttemptCall(
                    self.run_id,
                    function,
                    key,
                    rider.picks,
                    tuple(rider.kwargs),
                    False,
                    batch_picks,
                    template_of(rider.task, rider.kind),
                )
            )
            rows.append(arguments)
            hops.append(places)
        segment.future = pool.client.submit(
            execute_chain, segment.key, calls, rows, hops, key=segment.key, pure=False
        )
        self.chains.start(segment)
        head.future = segment.future
        return True

    def _callable(self, task: TaskDef) -> Callable:
        """What workers run for a task: its function, or the launch of an MPI task."""
        found = self.callables.get(id(task))
        if found is None:
            found = self.callables[id(task)] = worker_function(task, self.pools.config)
        return found

    def _input_future(self, inst: Instance, pool: Pool) -> Any:
        """The future of an upstream output on ``pool``'s cluster."""
        if inst.future is not None and inst.future.client is pool.client:
            if inst.batch_index is not None:
                return Picked(inst.future, inst.batch_index)
            return inst.future
        if inst.state is TaskState.CACHED and inst.future is None:
            return self.cache.load(inst, pool.client)
        return self._move(inst, pool)

    def _move(self, inst: Instance, pool: Pool) -> Any:
        """An output made on another partition's cluster, read from the store's artifact files
        by a worker of ``pool`` (the store is on a filesystem every partition sees)."""
        future = inst.loaders.get(id(pool.client))
        if future is None:
            if not self.store_is_current:  # the output's artifact row must be committed
                self.recorder.writer.flush()
                self.store_is_current = True
            path, data = self.cache.stored_artifact(inst.output_hash)
            future = pool.client.submit(
                load_on_worker,
                inst.output_hash,
                data,
                self.store_root,
                path,
                key=f"moved-{inst.task.name}-{self.run_id}-{inst.seq}-{pool.name}",
                pure=False,
            )
            inst.loaders[id(pool.client)] = future
        return future

    def _tend_pools(self) -> None:
        """Scale the pools and fail the tasks of a pool whose batch jobs cannot start."""
        now = time.time()  # recorded in the store, so wall-clock
        for pool in self.pools.all():
            for event in pool.tend(now):
                self.recorder.job_event(pool.name, event.name, **event.columns)
            if pool.broken is not None:
                stranded = [self._forget(key)[0] for key in self._keys_in(pool)]
                if stranded and pool.client.status == "running":
                    pool.client.cancel([inst.future for inst in stranded])
                for inst in stranded:
                    self._cannot_run(inst, pool.broken)

    def _keys_in(self, pool: Pool) -> list[str]:
        return [key for key, (_, _, in_pool) in self.in_flight.items() if in_pool is pool]

    def _cannot_run(self, inst: Instance, why: str) -> None:
        """Fail a task whose partition cannot run anything (retrying cannot help)."""
        self.recorder.attempt_ended_without_report(inst, AttemptStatus.FAILED, _BATCH_ERROR, why)
        self.graph.fail(inst, TaskState.FAILED, why)

    def _forget(self, key: str) -> tuple[Instance, int]:
        """Take an attempt out of flight, and its share out of its pool's demand."""
        inst, attempt, pool = self.in_flight.pop(key)
        self.unreported_since.pop(key, None)
        self.lost_since.pop(key, None)
        pool.demand = max(0.0, pool.demand - pool.job_share(inst.task))
        return inst, attempt

    # -- outcomes ---------------------------------------------------------------------------
    def _on_report(self, report: dict[str, Any]) -> None:
        if report["key"] not in self.in_flight:
            # A chain's rider whose upstream's report is being processed; otherwise a
            # duplicate: Dask reran a task whose worker died after it finished.
            self.chains.hold(report)
            return
        inst, attempt = self._forget(report["key"])
        self.recorder.attempt_finished(inst, attempt, report)
        inst.started_at, inst.ended_at = report["started"], report["ended"]
        if report["status"] == "success":
            self.durations.observe(inst.task.name, report["function_ended"] - report["started"])
            inst.output_hash = report["artifact"]["hash"]
            inst.n_items = report.get("n_items")
            if inst.chain is not None:  # only the chain's last value is in worker memory
                if inst.chain.is_last(inst):
                    inst.chain.future = None
                else:
                    inst.future = None
            self.graph.succeed(inst)
        else:
            self.chains.leave(inst)
            report["failure_cause"] = reported_cause(report)
            error = f"{report['exc_type']}: {report['exc_message']}"
            self._attempt_failed(inst, error, report["failure_cause"])

    def _attempt_failed(
        self, inst: Instance, error: str, cause: str, after: str | None = None
    ) -> None:
        """Retry a failed attempt (with the resources its cause escalates to), or fail.
        ``after``: a worker being killed; the retry waits until it has left, or Dask could
        send the retry to it."""
        if inst.attempt - inst.free_attempts > inst.task.resources.retries:
            self.graph.fail(inst, TaskState.FAILED, error)
            return
        try:
            inst.task = self.escalator.retry_task(inst.task, cause, inst.task_id)
        except ResourceError as exc:
            self.graph.fail(inst, TaskState.FAILED, f"{error}; {exc}")
        else:
            (self.held.setdefault(after, []) if after else self.retry).append(inst)

    def _on_started(self, report: dict[str, Any]) -> None:
        """An attempt with a walltime started: its deadline counts from now."""
        entry = self.in_flight.get(report["key"])
        if entry is not None:
            self.deadlines.start(report["key"], report["worker"], entry[0].task.resources.walltime)

    def _stop_overrunning_attempts(self) -> None:
        """Stop attempts past their walltime; they fail with cause ``timeout``."""
        for key, worker, started in self.deadlines.due():
            if key not in self.in_flight:
                continue  # it ended in time
            inst, _, pool = self.in_flight[key]
            self._forget(key)
            walltime = inst.task.resources.walltime
            message = f"stopped after its walltime of {walltime} s"
            killed, problem = stop_attempt(pool.client, inst.future, worker)
            if problem is not None:
                message = f"{message}; {problem}"
            self.recorder.attempt_ended_without_report(
                inst,
                AttemptStatus.TIMEOUT,
                None,
                message,
                "timeout",
                started_at=started,
                worker=worker,
            )
            self._attempt_failed(inst, f"timeout: {message}", "timeout", worker if killed else None)

    def _let_go_of_released_futures(self) -> None:
        """Drop the last references to released futures inside the client's event loop, where
        each release is a plain callback rather than a wake-up of the loop from this thread."""
        groups = _by_client(self.graph.released)
        self.graph.released = []  # now only the groups hold the futures
        for client, futures in groups:
            client.loop.add_callback(futures.clear)

    def _scan_in_flight(self) -> None:
        """Find attempts whose future errored (worker lost) or that never reported."""
        now = time.monotonic()
        for key, (inst, _, _) in list(self.in_flight.items()):
            status = inst.future.status
            if status == "finished":
                since = self.unreported_since.setdefault(key, now)
                if now - since > REPORT_GRACE:
                    self._lost(key, inst, None, "finished without a provenance report")
            elif status in ("error", "cancelled", "lost"):
                exception = inst.future.exception() if status == "error" else None
                waited = now - self.lost_since.setdefault(key, now)
                found = self.lost_workers.cause(exception, waited)
                if found is not None:
                    what = f"the cluster reported the task as {status}"
                    self._lost(key, inst, exception, what, *found)

    def _lost(
        self,
        key: str,
        inst: Instance,
        exc: BaseException | None,
        what: str,
        cause: str = "node_failure",
        why: str = "",
    ) -> None:
        self._forget(key)
        exc_type = f"{type(exc).__module__}.{type(exc).__qualname__}" if exc else None
        message = f"{what}: {exc}" if exc else what
        if why:  # what the cluster saw says more than Dask's generic text
            message = f"{why} ({what}: {type(exc).__name__})" if exc else f"{why}; {what}"
        if inst.batch_index is not None or inst.chain is not None:  # maybe not the culprit
            group = "a batch" if inst.batch_index is not None else "a fused chain"
            self.chains.leave(inst)
            inst.free_attempts += 1
            message += f"; it was in {group}, so it is retried alone without using a retry"
        self.recorder.attempt_ended_without_report(
            inst, AttemptStatus.LOST, exc_type, message, cause
        )
        self._attempt_failed(inst, message, cause)

    def abort(self, why: str) -> None:
        """Cancel in-flight attempts and mark every unfinished task cancelled."""
        in_flight = [inst.future for inst, _, _ in self.in_flight.values()]
        running = running_on([client for client, _ in _by_client(in_flight)])
        for client, futures in _by_client(in_flight):
            if client.status == "running":
                client.cancel(futures)
        for key, (inst, _, _) in self.in_flight.items():
            started, worker = running.get(key, (None, None))
            self.recorder.attempt_ended_without_report(
                inst, AttemptStatus.CANCELLED, None, why, started_at=started, worker=worker
            )
        self.in_flight.clear()
        self.graph.cancel_unfinished()
        self._record_changes()


def _may_batch(inst: Instance, call: AttemptCall, pool: Pool) -> bool:
    """First attempts (map elements or calls) of tasks that may share a Dask task."""
    return inst.attempt == 1 and not call.announce and _chainable(inst, pool)


def _chainable(inst: Instance, pool: Pool) -> bool:
    """Python tasks without walltime or worker resources may share a Dask task."""
    return (
        inst.task.kind == "python"
        and inst.task.resources.walltime is None
        and pool.task_resources(inst.task) is None
    )


def _by_client(futures: list[Any]) -> list[tuple[Any, list[Any]]]:
    groups: dict[int, tuple[Any, list[Any]]] = {}
    for future in futures:
        groups.setdefault(id(future.client), (future.client, []))[1].append(future)
    return list(groups.values())


def describe_exception(exc: BaseException) -> str:
    """One-line cause plus the traceback, for the run's error column."""
    return f"{type(exc).__name__}: {exc}\n" + "".join(traceback.format_exception(exc))
