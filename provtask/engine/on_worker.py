"""What runs inside Dask workers: the per-run plugin and the attempt wrapper.

The plugin ships a run's task functions to each worker once (so nothing but a small tuple
is pickled per task) and announces the worker. ``execute_attempt`` runs one try of a task,
measures it, stores its output as an artifact, and reports the attempt's provenance to the
driver as a Dask event; the value itself stays in worker memory for downstream tasks.
"""

from __future__ import annotations

import os
import pickle
import resource
import socket
import time
import traceback
from collections.abc import Callable
from types import CodeType
from typing import Any, NamedTuple

from distributed import get_worker
from distributed.diagnostics.plugin import WorkerPlugin

from ..errors import TaskTimeout
from ..gpu_devices import GPUTask, attempt_devices, setup_process
from ..labels import make_label
from ..mpi.attempt import MPICall
from ..store.artifacts import ArtifactFiles, make_artifact
from .batching import apply_picks
from .capture import captured, install_stream_routing
from .in_progress import RUNNING
from .report_columns import finished_report

TRACEBACK_LIMIT = 20_000  # characters kept of a traceback
_RSS_UNIT = 1024  # ru_maxrss is in KiB on Linux


class AttemptCall:
    """The per-task payload: which function of which run, and how to pick map elements.

    A plain object, not a tuple, so Dask does not search it for futures on every submit.
    """

    __slots__ = (
        "announce",
        "batch_picks",
        "function",
        "key",
        "keywords",
        "label",
        "picks",
        "probe",
        "run_id",
    )

    def __init__(
        self,
        run_id: str,
        function: int,
        key: str,
        picks: tuple[tuple[int, int], ...] = (),
        keywords: tuple[str, ...] = (),
        announce: bool = False,
        batch_picks: tuple = (),
        label: str | None = None,
        probe: bool = False,
    ) -> None:
        self.run_id = run_id
        self.function = function  # index into the run's function table
        self.key = key
        self.picks = picks  # (argument position, element index) pairs
        self.keywords = keywords  # names of the last arguments, passed by keyword
        self.announce = announce  # tell the driver when it starts (it enforces a walltime)
        self.batch_picks = batch_picks  # elements of batches' values (see .batching)
        self.label = label  # template of the attempt's label (see provtask.labels)
        self.probe = probe  # its task name's durations are unknown: report it at once

    def __reduce__(self) -> tuple:
        fields = (self.run_id, self.function, self.key, self.picks, self.keywords, self.announce)
        return AttemptCall, (*fields, self.batch_picks, self.label, self.probe)


class FailedAttempt:
    """Returned instead of a value when the task raised; the driver never passes it on."""

    __slots__ = ()

    def __reduce__(self) -> str:
        return "FAILED"


FAILED = FailedAttempt()


class RunContext(NamedTuple):
    topic: str  # of the run's events
    reports: dict[str, dict[str, Any]]  # by Dask key: finished attempts not yet sent
    probes: set[str]  # Dask keys of probes (see Probing): their reports go at once
    functions: tuple[Callable, ...]
    files: ArtifactFiles
    worker: str
    hostname: str
    node: str
    batch_job_id: str | None


_RUNS: dict[str, RunContext] = {}
REPORT_DELAY = 0.05  # s a report may wait to share a message while the worker has more work
REPORT_BATCH = 200  # reports sent at once at most


class RunPlugin(WorkerPlugin):
    """Installs a run's function table on every worker, including workers that join later."""

    def __init__(self, run_id: str, topic: str, store_root: str, functions: tuple[Callable, ...]):
        self.run_id = run_id
        self.topic = topic
        self.store_root = store_root
        self.functions = functions
        # cloudpickle drops source file names; keep them for readable worker tracebacks.
        self.filenames = tuple(
            getattr(_own(f), "__code__", None) and _own(f).__code__.co_filename for f in functions
        )
        self.name = f"provtask-{run_id}"

    def setup(self, worker: Any) -> None:
        self.worker = worker
        install_stream_routing()
        setup_process(worker.name, worker.state.total_resources.get("GPU", 0))
        for function, filename in zip(map(_own, self.functions), self.filenames, strict=True):
            if filename and hasattr(function, "__code__"):
                function.__code__ = _with_filename(function.__code__, filename)
        self.unsent: list[dict[str, Any]] = []
        self.timer: Any = None
        context = RunContext(
            topic=self.topic,
            reports={},
            probes=set(),
            functions=self.functions,
            files=ArtifactFiles(self.store_root),
            worker=worker.address,
            hostname=socket.gethostname(),
            node=os.environ.get("SLURMD_NODENAME") or socket.gethostname(),
            batch_job_id=batch_job_id(),
        )
        _RUNS[self.run_id] = context
        worker.log_event(
            self.topic,
            {
                "op": "worker",
                "worker": worker.address,
                "name": str(worker.name),
                "host": context.hostname,
                "pid": os.getpid(),
                "nthreads": worker.state.nthreads,
                "memory_limit": worker.memory_manager.memory_limit,
                "node": context.node,
                "batch_job_id": context.batch_job_id,
                "time": time.time(),
            },
        )

    def teardown(self, worker: Any) -> None:
        self.send_reports()
        _RUNS.pop(self.run_id, None)

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        """Queue an attempt's report as its task leaves the executor.

        This hook runs on the worker's event loop, so nothing wakes the loop from the task
        thread. While the worker has more tasks to run, reports wait (at most
        ``REPORT_DELAY``) to travel together; an idle worker sends at once, so chains of
        dependent tasks are not slowed down, and so does a worker that ran a probe: the
        driver waits for the probes' durations to batch the task name's other elements.
        """
        if finish == "executing":
            return
        context = _RUNS[self.run_id]
        report = context.reports.pop(key, None)
        if report is None:
            return
        probe = key in context.probes
        if probe:
            context.probes.discard(key)
        if isinstance(report, list):  # a batch: one report per attempt
            self.unsent.extend(report)
        else:
            self.unsent.append(report)
        state = self.worker.state
        busy = state.executing_count or state.ready
        if busy and not probe and len(self.unsent) < REPORT_BATCH:
            if self.timer is None:
                self.timer = self.worker.loop.call_later(REPORT_DELAY, self.send_reports)
        else:
            self.send_reports()

    def send_reports(self) -> None:
        if self.timer is not None:
            self.worker.loop.remove_timeout(self.timer)
            self.timer = None
        if self.unsent:
            # One pickle for all of them: the scheduler and the client pass the bytes on
            # without decoding each report's dict in their event loop.
            packed = pickle.dumps(self.unsent, protocol=pickle.HIGHEST_PROTOCOL)
            self.worker.log_event(self.topic, {"op": "attempts", "packed": packed})
            self.unsent = []


def unpack_reports(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The reports of an ``attempts`` event, as ``send_reports`` packed them."""
    return pickle.loads(event["packed"])


# Where each batch system puts the job id in a job's environment.
_JOB_ID_VARIABLES = ("SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID", "JOB_ID")


def batch_job_id() -> str | None:
    """The id of the batch job this worker runs in, or None outside a batch job."""
    return next((os.environ[v] for v in _JOB_ID_VARIABLES if os.environ.get(v)), None)


def _own(function: Callable) -> Callable:
    """A task's own function, also when it runs on GPUs."""
    return function.fn if isinstance(function, GPUTask) else function


def _with_filename(code: CodeType, filename: str) -> CodeType:
    constants = tuple(
        _with_filename(c, filename) if isinstance(c, CodeType) else c for c in code.co_consts
    )
    return code.replace(co_filename=filename, co_consts=constants)


def _record_failure(report: dict[str, Any], exc: BaseException, message: str) -> None:
    report["status"] = "timeout" if isinstance(exc, TaskTimeout) else "failed"
    # What escalating retries act on; numpy's failed allocations are MemoryErrors too.
    report["failure_cause"] = "oom" if isinstance(exc, MemoryError) else "error"
    report["exc_type"] = f"{type(exc).__module__}.{type(exc).__qualname__}"
    report["exc_message"] = message
    report["traceback"] = "".join(traceback.format_exception(exc))[-TRACEBACK_LIMIT:]


def execute_attempt(call: AttemptCall, *arguments: Any) -> Any:
    """Run one attempt of a task and report it; returns the value (or ``FAILED``).

    Arguments arrive flat (keyword values last, named by ``call.keywords``), as plain Dask
    task arguments: nothing nested for Dask to search on every submit.
    """
    context = _RUNS[call.run_id]
    if call.batch_picks:
        arguments = apply_picks(arguments, call.batch_picks)
    split = len(arguments) - len(call.keywords)
    args, kwargs = arguments[:split], dict(zip(call.keywords, arguments[split:], strict=True))
    report: dict[str, Any] = {"op": "attempt", "key": call.key, "started": time.time()}
    RUNNING[call.key] = (report["started"], context.worker)
    if call.probe:
        context.probes.add(call.key)
    if call.announce:  # the driver stops the attempt when it runs past its walltime
        event = {"op": "started", "key": call.key, "worker": context.worker}
        get_worker().log_event(context.topic, event)
    cpu_start = time.thread_time()
    value: Any = FAILED
    try:
        if call.picks:
            args = list(args)
            for position, index in call.picks:
                args[position] = args[position][index]
        # A GPU task holds its devices until it ends (see provtask.gpu_devices).
        with attempt_devices(context.functions[call.function], report) as function:
            report["label"] = make_label(call.label, function, args, kwargs)
            if isinstance(function, MPICall):  # launches ranks; reports their output itself
                value = function.run(args, kwargs, report, context.files, call.key)
            else:
                with captured(report):  # the attempt's own print output
                    value = function(*args, **kwargs)
    except BaseException as exc:  # the task's own failure: reported, not raised
        report["function_ended"] = time.time()
        _record_failure(report, exc, str(exc))
    else:
        report["function_ended"] = time.time()
        try:
            artifact = make_artifact(value, context.files)
        except (TypeError, OSError) as exc:
            value = FAILED
            _record_failure(report, exc, f"the task's result could not be stored: {exc}")
        else:
            report["status"] = "success"
            report["artifact"] = artifact
            report["output_hash"] = artifact.hash
            report["n_items"] = len(value) if isinstance(value, list | tuple) else None
    report["ended"] = time.time()
    report["cpu_time"] = time.thread_time() - cpu_start
    report["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _RSS_UNIT
    report["worker"] = context.worker
    report["hostname"] = context.hostname
    report["pid"] = os.getpid()
    report["node"] = context.node
    report["batch_job_id"] = context.batch_job_id
    context.reports[call.key] = finished_report(report)
    RUNNING.pop(call.key, None)
    return value


def execute_batch(batch_key: str, calls: tuple[AttemptCall, ...], rows: tuple[tuple, ...]) -> tuple:
    """Run several attempts one after the other; returns their values (``FAILED`` for those
    that failed). Each is measured and reported on its own, as by :func:`execute_attempt`."""
    values = tuple(execute_attempt(call, *row) for call, row in zip(calls, rows, strict=True))
    reports = _RUNS[calls[0].run_id].reports
    reports[batch_key] = [reports.pop(call.key) for call in calls]
    return values


def execute_chain(
    segment_key: str,
    calls: tuple[AttemptCall, ...],
    rows: tuple[tuple, ...],
    hops: tuple[tuple, ...],
) -> Any:
    """Run a fused chain: each attempt gets the earlier ones' values where ``hops`` says
    (see .chains). Stops at the first failure. Returns the last value, or ``FAILED``.

    A member reads only the value of the one before it (see ``Chains.riders_after``), so
    each value is let go once the next member has run: a chain holds one value at a time."""
    values: list[Any] = []
    reports = _RUNS[calls[0].run_id].reports
    done: list[dict[str, Any]] = []
    for call, row, places in zip(calls, rows, hops, strict=True):
        if places:
            row = apply_picks(row, places, source=values)
        value = execute_attempt(call, *row)
        done.append(reports.pop(call.key))
        if value is FAILED:
            break
        if values:
            values[-1] = None  # stored as an artifact; no later member reads it
        values.append(value)
    reports[segment_key] = done
    return values[-1] if len(values) == len(calls) else FAILED
