"""Pools whose workers are batch jobs (dask-jobqueue): scaling, and jobs that cannot start.

Each partition's cluster is scaled from the work the engine has submitted to it. Every job
submission is observed: a submission the batch system refuses, a job that pends for a
reason that will not clear, or a job that ends before its worker connects makes the pool
*broken*, which fails its tasks with the batch system's own words instead of waiting forever.
Submissions are paced (``max-submit-rate``), and one refused because the user's submit limit
is reached is tried again after a pause instead (see :mod:`.submit_rate`).
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from distributed.core import Status

from .lifetime import estimated_job_end, slurm_job_end
from .pool import JobEvent, Pool, jobs_needed
from .submit_rate import Backoff, SubmitPacer, is_submit_limit, pacer_for

if TYPE_CHECKING:
    from .config import PartitionConfig

RESCALE_INTERVAL = 10.0  # s between repeated scale requests (they replace lost jobs)
SQUEUE_INTERVAL = 3.0  # s between looks at jobs whose worker has not connected yet
SQUEUE_TIMEOUT = 30.0  # s squeue may take

# SLURM reasons for a pending job that will not clear by waiting (slurm.schedmd.com/
# job_reason_codes.html): the request exceeds a limit or is held.
_HOPELESS_REASONS = {
    "AccountNotAllowed",
    "BadConstraints",
    "DependencyNeverSatisfied",
    "InvalidAccount",
    "InvalidQOS",
    "JobHeldAdmin",
    "JobHeldUser",
    "PartitionConfig",
    "PartitionNodeLimit",
    "PartitionTimeLimit",
    "QOSNotAllowed",
}
_HOPELESS_PREFIXES = ("AssocMax", "QOSMax")
# Job states in which a worker may still connect.
_WAITING_STATES = {"PENDING", "CONFIGURING", "RUNNING", "REQUEUED", "RESIZING", "SUSPENDED"}


def hopeless(reason: str) -> bool:
    """Whether a pending job with this SLURM reason can never start without a change."""
    return reason in _HOPELESS_REASONS or (
        reason.startswith(_HOPELESS_PREFIXES) and "PerJob" in reason
    )


@dataclass
class _Job:
    """What the pool knows of one job submission."""

    name: str
    submitted_at: float
    job_id: str | None = None
    connected: bool = False
    withdrawn: bool = False  # cancelled by scaling down before its worker connected
    ended: bool = False  # seen gone before its worker connected
    hopeless_since: float | None = None
    reason: str | None = None
    ends_at: float | None = None  # when its walltime runs out, once its worker connected


@dataclass
class JobWatch:
    """Job submissions seen from the cluster's event loop, read from the engine's thread."""

    partition: str
    events: deque[tuple[str, str, Any, float]] = field(default_factory=deque)
    counter: itertools.count = field(default_factory=itertools.count)
    pacer: SubmitPacer | None = None
    backoff: Backoff = field(default_factory=Backoff)
    closing: bool = False  # the pool is closing: a paused submission gives up

    def job_class(self, base: type) -> type:
        """A subclass of the scheduler's dask-jobqueue Job class that reports submissions.

        A refused submission is reported and leaves the job ``failed`` instead of raising
        inside the cluster's event loop (where it would only be logged, and the worker
        would never arrive). A submission waits for its turn under the partition's
        ``max-submit-rate``; one refused for the user's submit limit is reported as
        ``held`` and tried again after a pause, under a new name.
        """
        watch = self

        class ObservedJob(base):  # type: ignore[misc, valid-type]
            def __await__(self) -> Generator[Any, None, Any]:
                return self._start_observed().__await__()

            async def _start_observed(self) -> Any:
                async with self.lock:
                    while self.status == Status.created and not watch.closing:
                        if await watch.submit(self):
                            break
                    if self.status == Status.created:  # the pool closed during a pause
                        self.status = Status.failed
                return self

        ObservedJob.__name__ = ObservedJob.__qualname__ = f"Observed{base.__name__}"
        return ObservedJob

    async def submit(self, job: Any) -> bool:
        """Submit one job in its turn; False when it should be tried again (submit limit)."""
        if self.pacer is not None:
            await asyncio.sleep(self.pacer.reserve())
        job.provtask_name = f"{self.partition}-{next(self.counter)}"
        try:
            await job.start()
        except Exception as exc:
            text = str(exc)
            if not is_submit_limit(text):
                job.status = Status.failed
                self.events.append(("refused", job.provtask_name, text, time.time()))
                return True
            pause = self.backoff.refused()
            self.events.append(("held", job.provtask_name, (text, pause), time.time()))
            deadline = time.monotonic() + pause
            while not self.closing and time.monotonic() < deadline:
                await asyncio.sleep(min(0.5, pause))
            return False
        self.backoff.accepted()
        self.events.append(("submitted", job.provtask_name, job.job_id, time.time()))
        return True


class BatchPool(Pool):
    """A partition's dask-jobqueue cluster, scaled by the engine's demand."""

    def __init__(self, partition: PartitionConfig, client: Any, cluster: Any, watch: JobWatch):
        super().__init__(partition.name, client, cluster, partition)
        self.watch = watch
        watch.pacer = pacer_for(partition.name, partition.max_submit_rate)
        self.jobs: dict[str, _Job] = {}
        self.requested = 0
        self.last_scaled = float("-inf")
        self.idle_since: float | None = None
        self.next_squeue = 0.0
        self.is_slurm = partition.scheduler == "slurm"
        self.noticed: list[JobEvent] = []  # job events seen between two calls of tend
        self.limit_reached = False  # the last submission was refused for the submit limit

    def tend(self, now: float) -> list[JobEvent]:
        events = self._news()
        if self.broken is None:
            self._scale(now)
            if self.is_slurm and now >= self.next_squeue:
                self.next_squeue = now + SQUEUE_INTERVAL
                events += self._look_at_waiting_jobs(now)
        return events

    def worker_connected(self, batch_job_id: str | None) -> float | None:
        for job in self.jobs.values():
            if job.job_id is not None and job.job_id == batch_job_id:
                if not job.connected:
                    job.connected = True
                    self.noticed.append(JobEvent(job.name, {"state": "RUNNING", "reason": None}))
                return job.submitted_at
        return None

    def job_end(self, batch_job_id: str | None, now: float) -> float | None:
        """When the walltime of a worker's batch job runs out (None: the partition has none)."""
        part = self.partition
        assert part is not None
        job = next((j for j in self.jobs.values() if j.job_id == batch_job_id), None)
        if part.walltime is None or job is None:
            return None
        if job.ends_at is None:
            known = slurm_job_end(job.job_id) if self.is_slurm else None  # type: ignore[arg-type]
            job.ends_at = known or estimated_job_end(job.submitted_at, now, part.walltime)
        return job.ends_at

    def release(self, now: float) -> list[JobEvent]:
        """The run is over: its jobs are cancelled when the pool closes."""
        return self._news() + self._cancelled(now, "the run ended")

    def close(self) -> None:
        """Close the cluster; if that fails, cancel the jobs it knew of directly."""
        self.watch.closing = True
        try:
            super().close()
        except Exception:
            job_ids = [job.job_id for job in self.jobs.values() if job.job_id is not None]
            if self.is_slurm and job_ids:
                subprocess.run(["scancel", *job_ids], capture_output=True, timeout=SQUEUE_TIMEOUT)
            raise

    def job_summary(self) -> str:
        alive = [job for job in self.jobs.values() if not job.ended]
        running = sum(job.connected for job in alive)
        queued = [job for job in alive if not (job.connected or job.withdrawn)]
        limit = "submit limit reached, trying again" if self.limit_reached else ""
        if not (running or queued):
            return limit
        text = f"{running} running"
        if queued:
            reasons = sorted({job.reason for job in queued if job.reason})
            text += f", {len(queued)} queued" + (f" ({', '.join(reasons)})" if reasons else "")
        return f"{text}, {limit}" if limit else text

    # -- scaling ----------------------------------------------------------------------------
    def _scale(self, now: float) -> None:
        part = self.partition
        assert part is not None
        if self.demand > 1e-9:
            self.idle_since = None
            wanted = jobs_needed(self.demand, part.min_jobs, part.max_jobs)
            wanted = max(wanted, self.requested)  # never shrink while tasks wait or run
        else:
            self.idle_since = self.idle_since or now
            idle_long = now - self.idle_since >= part.idle_timeout
            wanted = part.min_jobs if idle_long else self.requested
        if wanted < self.requested:
            for job in self.jobs.values():
                job.withdrawn = job.withdrawn or not job.connected
            if wanted == 0:
                self.noticed += self._cancelled(now, "idle")
        if wanted != self.requested or now - self.last_scaled >= RESCALE_INTERVAL:
            self.cluster.scale(jobs=wanted)
            self.requested, self.last_scaled = wanted, now

    def _cancelled(self, now: float, why: str) -> list[JobEvent]:
        """Every job not known to have ended is being cancelled now. A job that never
        started keeps SLURM's last reason for its wait."""
        events = []
        for job in self.jobs.values():
            if job.job_id is not None and not job.ended:
                job.ended = True
                columns = {"state": "CANCELLED", "ended_at": now}
                if job.connected or not job.reason:
                    columns["reason"] = why
                events.append(JobEvent(job.name, columns))
        return events

    # -- watching jobs ----------------------------------------------------------------------
    def _news(self) -> list[JobEvent]:
        """Job events noticed since the last call: connections, submissions, refusals."""
        events, self.noticed = self.noticed + self._read_watch(), []
        return events

    def _read_watch(self) -> list[JobEvent]:
        events = []
        while self.watch.events:
            what, name, detail, when = self.watch.events.popleft()
            if what == "submitted":
                self.limit_reached = False
                self.jobs[name] = _Job(name, when, job_id=detail)
                events.append(
                    JobEvent(name, {"job_id": detail, "submitted_at": when, "state": "SUBMITTED"})
                )
            elif what == "held":
                text, pause = detail
                self.limit_reached = True
                reason = f"submit limit reached; tried again in {pause:g} s"
                error = _submission_error(text)
                columns = {"submitted_at": when, "state": "REFUSED", "reason": reason}
                events.append(JobEvent(name, {**columns, "error": error}))
            else:
                message = _submission_error(detail)
                self._break(
                    f"the batch system refused a job for partition {self.name!r}: {message}"
                )
                events.append(
                    JobEvent(name, {"submitted_at": when, "state": "REFUSED", "error": message})
                )
        return events

    def _look_at_waiting_jobs(self, now: float) -> list[JobEvent]:
        waiting = {
            j.job_id: j for j in self.jobs.values() if j.job_id and not (j.connected or j.withdrawn)
        }
        if not waiting:
            return []
        states = squeue_states(list(waiting))
        if states is None:
            return []  # squeue failed this time: look again later
        events = []
        part = self.partition
        assert part is not None
        for job_id, job in waiting.items():
            state, reason = states.get(job_id, (None, None))
            if state is None and now - job.submitted_at < SQUEUE_INTERVAL:
                continue  # may not be visible to squeue yet
            if state is None or state not in _WAITING_STATES:
                self._break(
                    f"batch job {job_id} of partition {self.name!r} ended "
                    f"({state or 'gone'}) before its worker connected; its output file "
                    "(slurm-<id>.out, or the partition's log-directory) says why"
                )
                job.connected = job.ended = True  # reported once
                events.append(JobEvent(job.name, {"state": state or "ENDED", "ended_at": now}))
                continue
            if reason != job.reason:
                job.reason = reason
                events.append(JobEvent(job.name, {"state": state, "reason": reason}))
            if state == "PENDING" and reason and hopeless(reason):
                job.hopeless_since = job.hopeless_since or now
                if now - job.hopeless_since >= part.pending_timeout:
                    self._break(
                        f"batch job {job_id} of partition {self.name!r} cannot start: SLURM "
                        f"reason {reason!r} (pending {now - job.submitted_at:.0f} s). Fix the "
                        "partition in the clusters file (see: provtask clusters --job-script "
                        f"{self.name})"
                    )
            else:
                job.hopeless_since = None
        return events

    def _break(self, why: str) -> None:
        """No task can run here any more: cancel the jobs and remember why."""
        if self.broken is None:
            self.broken = why
            self.cluster.scale(jobs=0)
            self.requested = 0


def squeue_states(job_ids: list[str]) -> dict[str, tuple[str, str]] | None:
    """``{job id: (state, reason)}`` of the jobs squeue still knows; None if squeue failed."""
    try:
        done = subprocess.run(
            [
                "squeue",
                "--noheader",
                "--states=all",
                "--format=%i|%T|%r",
                "--jobs",
                ",".join(job_ids),
            ],
            capture_output=True,
            text=True,
            timeout=SQUEUE_TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        # All ids unknown (finished and purged): squeue says "Invalid job id specified".
        return {} if "Invalid job id" in done.stderr else None
    states = {}
    for line in done.stdout.splitlines():
        job_id, _, rest = line.strip().partition("|")
        state, _, reason = rest.partition("|")
        states[job_id] = (state, reason)
    return states


def _submission_error(text: str) -> str:
    """The batch system's own words from dask-jobqueue's submission error."""
    lines = [line.strip() for line in text.splitlines()]
    if "stderr:" in lines:
        lines = lines[lines.index("stderr:") + 1 :]
    return "; ".join(line for line in lines if line) or text


def import_dask_jobqueue() -> None:
    """Import dask-jobqueue without letting it replace the process's Ctrl-C handler.

    Its ``runner`` module calls ``signal.signal(SIGINT, lambda *_: sys.exit())`` on import,
    which turns Ctrl-C into SystemExit in the main thread and fails in any other thread.
    """
    if "dask_jobqueue" in sys.modules:
        return
    install = signal.signal
    signal.signal = lambda signalnum, handler: signal.getsignal(signalnum)  # type: ignore[assignment]
    try:
        import dask_jobqueue  # noqa: F401
    finally:
        signal.signal = install
