"""The local SLURM of ``.ci/start-slurm.sh`` for tests: required in CI, optional elsewhere.

``require_slurm()`` skips the calling test when SLURM is not running, except under
``CI=true``, where a missing SLURM is a failure: CI must never pass by skipping.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

PARTITIONS = ("cpu", "gpu")


def slurm_problem() -> str | None:
    """Why the local SLURM cannot be used, or ``None`` when it answers with both partitions."""
    try:
        done = subprocess.run(
            ["sinfo", "--noheader", "--format=%R"], capture_output=True, text=True, timeout=20
        )
    except FileNotFoundError:
        return "sinfo is not installed"
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 20 s"
    if done.returncode != 0:
        return f"sinfo failed: {done.stderr.strip()}"
    missing = set(PARTITIONS) - set(done.stdout.split())
    if missing:
        return f"partition(s) {', '.join(sorted(missing))} missing from sinfo"
    return None


def require_slurm() -> None:
    """Skip (outside CI) or fail (with ``CI=true``) unless the local SLURM is up."""
    problem = slurm_problem()
    if problem is None:
        return
    message = f"the local SLURM is needed: {problem}; start it with: bash .ci/start-slurm.sh"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def accounting_problem() -> str | None:
    """Why sacct cannot be used (SLURM down, no slurmdbd), or ``None`` when it answers."""
    if problem := slurm_problem():
        return problem
    try:
        done = subprocess.run(
            ["sacct", "--noheader", "--parsable2", "--jobs=1", "--format=JobID"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except FileNotFoundError:
        return "sacct is not installed"
    except subprocess.TimeoutExpired:
        return "sacct did not answer within 30 s"
    if done.returncode != 0:
        return f"sacct failed: {(done.stderr + done.stdout).strip()}"
    return None


def require_accounting() -> None:
    """Like ``require_slurm``, for the local SLURM's job accounting (slurmdbd + MariaDB)."""
    problem = accounting_problem()
    if problem is None:
        return
    message = (
        f"the local SLURM with accounting is needed: {problem}; start it with: "
        "bash .ci/start-slurm.sh"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def active_jobs(job_ids: set[str]) -> set[str]:
    """Which of these batch jobs squeue still lists (pending, running or completing)."""
    done = subprocess.run(
        ["squeue", "--noheader", "--format=%i"], capture_output=True, text=True, check=True
    )
    return job_ids & set(done.stdout.split())


def wait_until_gone(job_ids: set[str], timeout: float = 30.0) -> set[str]:
    """Wait for these jobs to leave squeue; returns those still there after ``timeout``."""
    deadline = time.monotonic() + timeout
    while (left := active_jobs(job_ids)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def jobs_named(name: str) -> set[str]:
    """The ids of the batch jobs squeue lists under this job name (pending, running…)."""
    done = subprocess.run(
        ["squeue", "--noheader", "--format=%i", f"--name={name}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(done.stdout.split())


def wait_until_none_named(name: str, timeout: float = 30.0) -> set[str]:
    """Wait for the jobs named ``name`` to leave squeue; returns those still there."""
    deadline = time.monotonic() + timeout
    while (left := jobs_named(name)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def write_clusters(folder: Path, partitions: dict[str, dict[str, object]]) -> Path:
    """``folder/clusters.yaml`` with these SLURM partitions (the first is the default), each
    with a log directory in ``folder`` and its given settings."""
    lines = [f"default: {next(iter(partitions))}", "partitions:"]
    for name, settings in partitions.items():
        settings = {"scheduler": "slurm", "log-directory": str(folder / "logs"), **settings}
        lines.append(f"  {name}:")
        lines += [f"    {key}: {value!r}" for key, value in settings.items()]
    path = folder / "clusters.yaml"
    path.write_text("\n".join(lines).replace("'", '"') + "\n")
    return path
