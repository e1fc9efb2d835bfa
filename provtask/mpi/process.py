"""Running a launcher: output streamed to files, a walltime that kills every rank.

The launcher gets a session (and process group) of its own. Its output goes straight to
files, so no pipe fills up however much the ranks print. Past the walltime the whole group
gets SIGTERM (srun and mpirun pass it on to their ranks), then SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

KILL_GRACE = 5.0  # s between SIGTERM and SIGKILL of a launcher past its walltime


@dataclass(frozen=True)
class Outcome:
    """How a launcher ended: its exit code (``None`` when killed at the walltime)."""

    exit_code: int | None
    timed_out: bool
    wall_time: float


def run_streamed(
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: str | None,
    stdout: Path,
    stderr: Path,
    timeout: float | None,
) -> Outcome:
    """Run ``argv`` to its end or to ``timeout`` seconds; stdout and stderr go to the files."""
    started = time.monotonic()
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
        try:
            code: int | None = process.wait(timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            _stop_group(process)
            code, timed_out = None, True
        except BaseException:  # the attempt itself is being stopped: leave no rank behind
            _stop_group(process)
            raise
        _signal_group(process.pid, signal.SIGKILL)  # ranks that outlived their launcher
    return Outcome(code, timed_out, time.monotonic() - started)


def _stop_group(process: subprocess.Popen) -> None:
    _signal_group(process.pid, signal.SIGTERM)
    try:
        process.wait(KILL_GRACE)
    except subprocess.TimeoutExpired:
        _signal_group(process.pid, signal.SIGKILL)
        process.wait()


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is empty
        os.killpg(group, signum)
