"""Batch jobs that end on time: when a job's walltime runs out, and workers that stop
taking tasks before it.

A worker whose job is within its partition's ``lifetime-margin`` of the walltime is paused
on the scheduler (it finishes what it runs, and gets nothing new); once it runs nothing it
retires, so its job ends early and the pool's scaling starts a fresh one while work remains.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from datetime import datetime
from typing import Any

from distributed.core import Status

SQUEUE_TIMEOUT = 30.0  # s squeue may take
# Without SLURM's word, a job is taken to have started this long before its worker connected.
STARTUP_ALLOWANCE = 60.0
_RETIRING: set[asyncio.Future] = set()  # retirements under way on the scheduler


def slurm_job_end(job_id: str) -> float | None:
    """When SLURM will end a running job at its walltime (epoch seconds), or None."""
    try:
        done = subprocess.run(
            ["squeue", "--noheader", "--format=%e", "--jobs", job_id],
            capture_output=True,
            text=True,
            timeout=SQUEUE_TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    try:  # e.g. 2026-12-02T20:41:00, in the local time zone; "N/A" without a limit
        return datetime.fromisoformat(done.stdout.strip()).timestamp()
    except ValueError:
        return None


def estimated_job_end(submitted_at: float, connected_at: float, walltime: float) -> float:
    """A job's end when the batch system does not say: it started after its submission and
    at most ``STARTUP_ALLOWANCE`` before its worker connected."""
    return max(submitted_at, connected_at - STARTUP_ALLOWANCE) + walltime


def pause_and_retire_idle(workers: list[str], dask_scheduler: Any) -> list[str]:
    """On the scheduler (``client.run_on_scheduler`` passes ``dask_scheduler``): these
    workers get no new tasks; those that run none retire (their nanny and job end).
    Returns the workers retired now."""
    stimulus = f"provtask-job-end-{time.time()}"
    idle = []
    for address in workers:
        state = dask_scheduler.workers.get(address)
        if state is None or state.status == Status.closing_gracefully:
            continue
        if state.status == Status.running:
            dask_scheduler.handle_worker_status_change(Status.paused, state, stimulus)
        if not state.processing:
            idle.append(address)
    if idle:  # retiring waits for the workers' data to move: not on the engine's time
        retiring = asyncio.ensure_future(
            dask_scheduler.retire_workers(
                workers=idle, close_workers=True, remove=True, stimulus_id=stimulus
            )
        )
        _RETIRING.add(retiring)
        retiring.add_done_callback(_RETIRING.discard)
    return idle
