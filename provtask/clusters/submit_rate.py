"""Submitting batch jobs politely: at most a partition's ``max-submit-rate`` per minute, and
a pause, not a failure, when the batch system says the user's submit limit is reached.
"""

from __future__ import annotations

import re
import threading
import time

# What sbatch prints when a QOS or association caps the jobs a user may have queued
# (slurm.schedmd.com/resource_limits.html): the reason, e.g. "sbatch: error:
# QOSMaxSubmitJobPerUserLimit", then "Batch job submission failed: Job violates
# accounting/QOS policy (job submit limit, user's size and/or time limits)". The same
# message with a per-job reason (QOSMaxWallDurationPerJobLimit) never clears by waiting.
_SUBMIT_LIMIT = re.compile(r"MaxSubmitJob|Job violates accounting/QOS policy", re.IGNORECASE)
_PER_JOB_REASON = re.compile(r"\b(?:QOS|Assoc)\w*PerJob", re.IGNORECASE)
FIRST_PAUSE = 5.0  # s before the first new try after a submit-limit refusal
LONGEST_PAUSE = 300.0  # s the pause doubles up to


def is_submit_limit(error: str) -> bool:
    """Whether a refused submission says the user may not queue more jobs now."""
    return bool(_SUBMIT_LIMIT.search(error)) and not _PER_JOB_REASON.search(error)


class SubmitPacer:
    """Spaces the submissions of one partition ``60 / per_minute`` seconds apart, after a
    first burst of six seconds' worth (``per_minute / 10`` jobs, at least one) at once."""

    def __init__(self, per_minute: float) -> None:
        self.interval = 60.0 / per_minute
        self.burst = max(1, int(per_minute // 10))
        self._due = float("-inf")  # when the next submission would be due at the steady rate
        self._lock = threading.Lock()  # every pool of the partition has its own event loop

    def reserve(self) -> float:
        """Take the next submission slot; returns the seconds to wait for it."""
        with self._lock:
            now = time.monotonic()
            due = max(self._due, now)
            slot = max(now, due - (self.burst - 1) * self.interval)
            self._due = due + self.interval
            return slot - now


class Backoff:
    """Pauses after submit-limit refusals: ``FIRST_PAUSE``, doubled up to ``LONGEST_PAUSE``,
    back to the first after a submission goes through."""

    def __init__(self) -> None:
        self.pause = FIRST_PAUSE

    def refused(self) -> float:
        """The pause before the next try."""
        pause, self.pause = self.pause, min(LONGEST_PAUSE, 2 * self.pause)
        return pause

    def accepted(self) -> None:
        self.pause = FIRST_PAUSE


_PACERS: dict[tuple[str, float], SubmitPacer] = {}
_PACERS_LOCK = threading.Lock()


def pacer_for(partition: str, per_minute: float) -> SubmitPacer:
    """The one pacer of a partition in this process (its MPI shapes' pools share it)."""
    with _PACERS_LOCK:
        return _PACERS.setdefault((partition, per_minute), SubmitPacer(per_minute))
