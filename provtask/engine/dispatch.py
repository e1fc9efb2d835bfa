"""Dispatch: ready tasks to Dask tasks on the pools that run them.

Tasks found in the store become cached; the others are grouped by pool, arity and worker
resources into one ``client.map`` each: small tasks in batches (see :mod:`.batching`), heads
of chains of small tasks with their chain (see :mod:`.chains`), the others one Dask task each.
Arguments are resolved to the futures of upstream outputs where the consumer runs (see
:mod:`.placement`). Dask keys are named
``<task>-<run>-<seq>.<attempt>``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from ..clusters.pool import Pool
from ..errors import BatchJobError
from ..labels import template_of
from ..mpi.call import worker_function
from ..states import AttemptStatus, TaskState
from ..tasks import TaskDef
from .batching import Durations, Probing, take_picks
from .cache import Cache
from .chains import Chains, Hop, Segment, rider_key
from .instance import Instance
from .job_ends import JobEnds
from .on_worker import AttemptCall, execute_attempt, execute_batch, execute_chain
from .placement import Placement
from .pools import Pools
from .recorder import RunRecorder
from .rungraph import RunGraph
from .tracking import InFlight

_ATOMS = {str, int, float, bool, bytes, type(None)}  # arguments that hold no reference
_BATCH_ERROR = f"{BatchJobError.__module__}.{BatchJobError.__qualname__}"


class Dispatcher:
    """Submits the attempts of one run; ``on_report`` takes reports held for chain riders."""

    def __init__(
        self,
        run_id: str,
        graph: RunGraph,
        pools: Pools,
        recorder: RunRecorder,
        cache: Cache,
        in_flight: InFlight,
        store_root: str,
        on_report: Callable[[dict[str, Any]], None],
    ) -> None:
        self.run_id = run_id
        self.graph = graph
        self.pools = pools
        self.recorder = recorder
        self.cache = cache
        self.in_flight = in_flight
        self.on_report = on_report
        self.placement = Placement(run_id, cache, recorder, store_root)
        self.threads: dict[str, tuple[Pool, int]] = {}  # worker address: its pool, threads
        self.durations = Durations()
        self.job_ends = JobEnds()  # tasks placed by the time left in workers' batch jobs
        self.probing = Probing(self.durations)
        self.chains = Chains(self.durations)
        self.batches = 0  # batches submitted so far: arguments may then hold batch picks
        self.callables: dict[int, Callable] = {}  # by id of the TaskDef
        self.functions: dict[Callable, int] = {}
        for inst in graph.instances.values():
            self.functions.setdefault(self._callable(inst.task), len(self.functions))

    def cannot_run(self, inst: Instance, why: str) -> None:
        """Fail a task whose partition cannot run anything (retrying cannot help)."""
        self.recorder.attempt_ended_without_report(inst, AttemptStatus.FAILED, _BATCH_ERROR, why)
        self.graph.fail(inst, TaskState.FAILED, why)

    def submit(self, batch: list[Instance]) -> None:
        """Submit ready tasks (first attempts and retries), or mark them cached. The probes
        of new task names go out before the elements they hold back are keyed."""
        first, later = self.probing.first_out(batch, self.slots)
        self._submit(first)
        if later:
            self._submit(later)

    @property
    def slots(self) -> int:
        """Threads of the workers connected now: at most this many tasks run at once."""
        return sum(n for _, n in self.threads.values())

    def _submit(self, batch: list[Instance]) -> None:
        # One client.map per pool, number of arguments and worker resources; its columns
        # are the arguments. Tasks whose output is in the store become cached instead.
        riders = [inst for inst in batch if inst.attempts.chain is not None]
        batch = self.cache.take_hits(batch)
        if riders:
            batch = self._board(riders, batch)
        batch = self.probing.admit(batch, self.slots, time.monotonic())
        self.placement.outputs_reported()
        groups: dict[tuple, tuple[Pool, list[Instance], tuple[str, ...] | None]] = {}
        now = time.time()
        placed: dict[int, tuple[Pool, tuple]] = {}  # by id of the TaskDef: its pool, resources
        for inst in batch:
            task = inst.task
            found = placed.get(id(task))
            if found is None:
                pool = self.pools.pool_for(task)
                resources = pool.task_resources(task)
                found = placed[id(task)] = (
                    pool,
                    tuple(sorted(resources.items())) if resources else (),
                )
            pool, resource_key = found
            workers = self.job_ends.workers_for(pool, task, now)
            if workers == () and pool.broken is None:  # no worker has time enough left
                self.job_ends.hold(inst, pool)
                continue
            arity = len(inst.node.args) + len(inst.node.kwargs)
            group_key = (id(pool), arity, resource_key, workers)
            groups.setdefault(group_key, (pool, [], workers))[1].append(inst)
        for pool, instances, workers in groups.values():
            calls, rows = [], []
            load = functools.partial(self.placement.input_future, pool=pool)
            facts: dict[tuple[int, str], tuple] = {}  # by TaskDef and kind: see _call_facts
            for inst in instances:
                inst.attempts.number += 1
                inst.attempts.key = attempt_key(inst, self.run_id)
                if inst.attempts.number == 1:
                    self.recorder.task_submitted(inst, pool.name)
                    self.graph.set_state(inst, TaskState.RUNNING)
                else:
                    self.recorder.attempt_submitted(inst, pool.name)
                if pool.broken is not None:
                    self.cannot_run(inst, pool.broken)
                    continue
                task, node = inst.task, inst.node
                shared = facts.get((id(task), inst.kind))
                if shared is None:
                    shared = facts[(id(task), inst.kind)] = self._call_facts(task, inst.kind)
                function, announce, label, probe = shared
                arguments = (*node.args, *node.kwargs.values())
                batch_picks: tuple = ()
                if not all(type(value) in _ATOMS for value in arguments):
                    arguments = self.graph.resolve(arguments, load)
                    if self.batches:
                        arguments, batch_picks = take_picks(arguments)
                calls.append(
                    AttemptCall(
                        self.run_id,
                        function,
                        inst.attempts.key,
                        node.picks,
                        tuple(node.kwargs),
                        announce,
                        batch_picks,
                        label,
                        probe=probe,
                    )
                )
                rows.append(arguments)
                self.in_flight.add(inst.attempts.key, inst, pool)
            if calls:
                self._send(pool, calls, rows, workers)

    def _call_facts(self, task: TaskDef, kind: str) -> tuple[int, bool, str | None, bool]:
        """What every attempt call of a task shares within one submission: the index of its
        function, whether the driver enforces its walltime (Python tasks; MPI tasks enforce
        their own), its label template, and whether it probes a task name not yet known."""
        return (
            self.functions[self._callable(task)],
            task.kind == "python" and task.resources.walltime is not None,
            template_of(task, kind),
            not self.durations.known(task.name),
        )

    def _board(self, riders: list[Instance], ready: list[Instance]) -> list[Instance]:
        """Riders of fused chains that are ready take their place in flight (see .chains);
        returns the other ready tasks. A rider found cached leaves its chain."""
        running = {id(inst) for inst in ready}
        for inst in riders:
            if id(inst) not in running:  # cached, or its cache_key function failed
                self.chains.leave(inst)
        others = []
        for inst in ready:
            if inst.attempts.chain is None or inst.attempts.number:
                others.append(inst)
                continue
            segment = inst.attempts.chain
            key, report = self.chains.board(inst)
            upstream = segment.members[segment.positions[inst.node.seq] - 1]
            inst.attempts.number, inst.attempts.key, inst.attempts.batch_index = 1, key, None
            self.recorder.task_submitted(inst, segment.pool.name, upstream.attempts.ended_at)
            self.graph.set_state(inst, TaskState.RUNNING)
            self.in_flight.add(key, inst, segment.pool)
            inst.attempts.future = segment.future
            if report is not None:
                self.on_report(report)
        return others

    def _send(
        self,
        pool: Pool,
        calls: list[AttemptCall],
        rows: list[tuple],
        workers: tuple[str, ...] | None = None,
    ) -> None:
        """Submit attempts of one pool, arity, resources and ``workers`` (those with time
        enough left in their job; None: any): small tasks in batches (see .batching),
        heads of chains of small tasks with their chain (see .chains), the others one Dask
        task each."""
        alone: list[int] = []
        batchable: dict[str, list[int]] = {}
        for i, call in enumerate(calls):
            inst = self.in_flight.instance(call.key)
            inst.attempts.batch_index = None
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
            resources=pool.task_resources(self.in_flight.instance(keys[0]).task),
            workers=list(workers) if workers else None,
            allow_other_workers=False,
        )
        for key, future in zip(keys, futures, strict=True):
            self.in_flight.instance(key).attempts.future = future

    def _send_batches(
        self, pool: Pool, chunks: list[list[int]], calls: list[AttemptCall], rows: list[tuple]
    ) -> None:
        """One Dask task per chunk of attempts (positions in ``calls`` and ``rows``), all
        submitted in one ``client.map``."""
        keys = []
        for chunk in chunks:
            first = self.in_flight.instance(calls[chunk[0]].key)
            keys.append(f"batch-{first.task.name}-{self.run_id}-{first.node.seq}.{len(chunk)}")
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
                inst = self.in_flight.instance(calls[position].key)
                inst.attempts.future, inst.attempts.batch_index = future, index

    def _send_chain(self, pool: Pool, head_call: AttemptCall, head_row: tuple) -> bool:
        """Send a task with the small tasks that follow it in a chain, as one Dask task;
        False if it cannot head a chain or nothing can follow it."""
        head = self.in_flight.instance(head_call.key)
        if head_call.announce or not _chainable(head, pool):
            return False
        riders = self.chains.riders_after(
            head, lambda inst: self.pools.pool_for(inst.task) is pool and _chainable(inst, pool)
        )
        if not riders:
            return False
        segment_key = f"chain-{attempt_key(head, self.run_id)}"
        segment = Segment([head, *riders], segment_key, pool)

        def load(upstream: Instance) -> Any:
            index = segment.positions.get(upstream.node.seq)
            return Hop(index) if index is not None else self.placement.input_future(upstream, pool)

        calls, rows, hops = [head_call], [head_row], [()]
        for rider in riders:
            arguments = self.graph.resolve((*rider.node.args, *rider.node.kwargs.values()), load)
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
                    rider.node.picks,
                    tuple(rider.node.kwargs),
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
        head.attempts.future = segment.future
        return True

    def _callable(self, task: TaskDef) -> Callable:
        """What workers run for a task: its function, or the launch of an MPI task."""
        found = self.callables.get(id(task))
        if found is None:
            found = self.callables[id(task)] = worker_function(task, self.pools.config)
        return found


def attempt_key(inst: Instance, run_id: str) -> str:
    """The Dask key of an instance's latest attempt: task name, run, instance and attempt."""
    return f"{inst.task.name}-{run_id}-{inst.node.seq}.{inst.attempts.number}"


def _may_batch(inst: Instance, call: AttemptCall, pool: Pool) -> bool:
    """First attempts (map elements or calls) of tasks that may share a Dask task."""
    return inst.attempts.number == 1 and not call.announce and _chainable(inst, pool)


def _chainable(inst: Instance, pool: Pool) -> bool:
    """Python tasks without walltime or worker resources may share a Dask task."""
    return (
        inst.task.kind == "python"
        and inst.task.resources.walltime is None
        and pool.task_resources(inst.task) is None
    )
