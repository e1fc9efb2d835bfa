"""Outcomes of attempts: a worker's report, a walltime kill, or a future lost with its worker.

Each is recorded, then turned into a transition of the run graph (success) or handed to the
retry policy (failure).
"""

from __future__ import annotations

from typing import Any

from ..states import AttemptStatus
from .chains import Chains
from .dispatch import Dispatcher
from .failures import Retries, reported_cause
from .instance import Instance
from .recorder import RunRecorder
from .report_columns import (
    ENDED,
    EXC_MESSAGE,
    EXC_TYPE,
    FAILURE_CAUSE,
    FUNCTION_ENDED,
    N_ITEMS,
    OUTPUT_HASH,
    STARTED,
    STATUS,
)
from .rungraph import RunGraph
from .tracking import InFlight, Lost
from .walltime import stop_attempt

# Attempts a task may lose to its batch job's walltime without using its retries (a task
# without a walltime that cannot finish within one job must not run forever).
FREE_WALLTIME_RETRIES = 3


class Outcomes:
    """Accounts for attempts taken out of flight."""

    def __init__(
        self,
        graph: RunGraph,
        recorder: RunRecorder,
        in_flight: InFlight,
        retries: Retries,
        dispatch: Dispatcher,
    ) -> None:
        self.graph = graph
        self.recorder = recorder
        self.in_flight = in_flight
        self.retries = retries
        self.dispatch = dispatch
        self.walltime_losses: dict[int, int] = {}  # by task seq: attempts lost to job walltimes

    @property
    def chains(self) -> Chains:
        return self.dispatch.chains

    def report(self, report: dict[str, Any]) -> None:
        """A worker's report of one attempt (see ``report_columns.finished_report``)."""
        if report["key"] not in self.in_flight:
            # A chain's rider whose upstream's report is being processed; otherwise a
            # duplicate: Dask reran a task whose worker died after it finished.
            self.chains.hold(report)
            return
        inst, attempt = self.in_flight.forget(report["key"])
        self.recorder.attempt_finished(inst, attempt, report)
        row = report["row"]
        inst.attempts.started_at, inst.attempts.ended_at = row[STARTED], row[ENDED]
        if row[STATUS] == "success":
            self.dispatch.durations.observe(inst.task.name, row[FUNCTION_ENDED] - row[STARTED])
            inst.output_hash = row[OUTPUT_HASH]
            inst.n_items = row[N_ITEMS]
            if inst.attempts.chain is not None:  # only the chain's last value is in worker memory
                if inst.attempts.chain.is_last(inst):
                    inst.attempts.chain.future = None
                else:
                    inst.attempts.future = None
            self.graph.succeed(inst)
        else:
            self.chains.leave(inst)
            cause = reported_cause(row[STATUS], row[FAILURE_CAUSE])
            self.retries.attempt_failed(inst, f"{row[EXC_TYPE]}: {row[EXC_MESSAGE]}", cause)

    def stop_overrunning(self) -> None:
        """Stop attempts past their walltime; they fail with cause ``timeout``."""
        for key, inst, pool, worker, started in list(self.in_flight.overdue()):
            self.in_flight.forget(key)
            walltime = inst.task.resources.walltime
            message = f"stopped after its walltime of {walltime} s"
            killed, problem = stop_attempt(pool.client, inst.attempts.future, worker)
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
            after = worker if killed else None
            self.retries.attempt_failed(inst, f"timeout: {message}", "timeout", after)

    def lost(self, lost: Lost) -> None:
        """An attempt whose future ended without a report."""
        inst = lost.inst
        self.in_flight.forget(lost.key)
        exc = lost.exception
        exc_type = f"{type(exc).__module__}.{type(exc).__qualname__}" if exc else None
        message = f"{lost.what}: {exc}" if exc else lost.what
        if lost.why:  # what the cluster saw says more than Dask's generic text
            message = (
                f"{lost.why} ({lost.what}: {type(exc).__name__})"
                if exc
                else f"{lost.why}; {lost.what}"
            )
        if lost.cause == "job_walltime":
            self.chains.leave(inst)
            message += self._walltime_loss(inst)
        # Maybe not the culprit:
        elif inst.attempts.batch_index is not None or inst.attempts.chain is not None:
            group = "a batch" if inst.attempts.batch_index is not None else "a fused chain"
            self.chains.leave(inst)
            inst.attempts.uncounted += 1
            message += f"; it was in {group}, so it is retried alone without using a retry"
        self.recorder.attempt_ended_without_report(
            inst, AttemptStatus.LOST, exc_type, message, lost.cause
        )
        self.retries.attempt_failed(inst, message, lost.cause)

    def _walltime_loss(self, inst: Instance) -> str:
        """An attempt lost because its batch job reached its walltime is free, a few times."""
        seq = inst.node.seq
        losses = self.walltime_losses[seq] = self.walltime_losses.get(seq, 0) + 1
        if losses > FREE_WALLTIME_RETRIES:
            return (
                f"; lost to a job's walltime {losses} times: give the task a walltime (it then "
                "goes to a job with that long left), or raise the partition's walltime"
            )
        inst.attempts.uncounted += 1
        return "; it is retried in another batch job without using a retry"
