"""SLURM's accounting of a run's batch jobs (``sacct``), joined with what provtask recorded.

provtask's ``jobs`` table holds what the driver saw of each batch job; SLURM's accounting
(slurmdbd) knows how the job ended: its state (``TIMEOUT``, ``OUT_OF_MEMORY``, ``FAILED``,
``CANCELLED``, ...), exit code and signal, peak memory, elapsed time and nodes.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import AccountingError

if TYPE_CHECKING:
    import pandas as pd

    from ..store import Store

SACCT_FIELDS = (
    "JobID",
    "JobName",
    "Partition",
    "State",
    "ExitCode",
    "MaxRSS",
    "ReqMem",
    "Elapsed",
    "NodeList",
    "Submit",
    "Start",
    "End",
)
SACCT_TIMEOUT = 60.0  # seconds
# The sacct columns of job_accounting, after provtask's own.
ACCOUNTING_COLUMNS = [
    "state",
    "exit_code",
    "signal",
    "elapsed",
    "max_rss",
    "req_mem",
    "node_list",
    "start",
    "end",
]
# parse_sacct's columns
_COLUMNS = ["job_id", "job_name", "slurm_partition", *ACCOUNTING_COLUMNS, "submit"]
_SLURM_JOB_ID = re.compile(r"\d+")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)([KMGTP]?)[nc]?")
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40, "P": 2**50}
_ELAPSED = re.compile(r"(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)(?:\.\d+)?")


def job_accounting(store: Store, run: str) -> pd.DataFrame:
    """One row per batch job of a run: provtask's record joined with SLURM's accounting.

    provtask's columns: ``run_id``, ``partition``, ``name``, ``job_id``, ``submitted_at``,
    ``recorded_state`` (the ``jobs`` table's ``state``), ``reason`` and ``workers`` (how many
    of the run's workers ran in the job). SLURM's: ``state``, ``exit_code``, ``signal``,
    ``elapsed``, ``max_rss`` (bytes, the largest of the job's steps), ``req_mem`` (bytes),
    ``node_list``, ``start`` and ``end``; missing for a job sacct does not know (a refused
    submission has no job id). Raises ``AccountingError`` when sacct cannot answer.
    """
    run_id = store.resolve_run(run)
    jobs = store.jobs(run_id).rename(columns={"state": "recorded_state"})
    workers = store.workers(run_id)["batch_job_id"].value_counts()
    jobs["workers"] = jobs["job_id"].map(workers).fillna(0).astype("Int64")
    ids = [job for job in jobs["job_id"].dropna().unique() if _SLURM_JOB_ID.fullmatch(job)]
    accounting = parse_sacct(run_sacct(ids) if ids else "")
    merged = jobs.merge(accounting[["job_id", *ACCOUNTING_COLUMNS]], on="job_id", how="left")
    own = ["run_id", "partition", "name", "job_id", "submitted_at", "recorded_state", "reason"]
    return merged[[*own, "workers", *ACCOUNTING_COLUMNS]]


def run_sacct(job_ids: Sequence[str]) -> str:
    """sacct's ``--parsable2`` lines for these jobs and their steps, times in UTC."""
    command = [
        "sacct",
        "--parsable2",
        "--noheader",
        f"--jobs={','.join(job_ids)}",
        f"--format={','.join(SACCT_FIELDS)}",
    ]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=SACCT_TIMEOUT,
            env={**os.environ, "TZ": "UTC"},
        )
    except FileNotFoundError:
        raise AccountingError(
            "sacct is not installed: SLURM job accounting is not available on this machine; "
            "list the jobs as provtask saw them without --sacct"
        ) from None
    except subprocess.TimeoutExpired:
        raise AccountingError(
            f"sacct did not answer within {SACCT_TIMEOUT:.0f} s; check that slurmdbd is up "
            f"('sacct -j {job_ids[0]}')"
        ) from None
    if done.returncode != 0:
        lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        problem = _without_prefixes(lines[-1]) if lines else f"exit status {done.returncode}"
        raise AccountingError(
            f"sacct: {problem}; SLURM job accounting (slurmdbd) is needed for this: ask the "
            "cluster's admins, or list the jobs as provtask saw them without --sacct"
        )
    return done.stdout


def parse_sacct(text: str) -> pd.DataFrame:
    """One row per job from sacct's ``--parsable2 --noheader`` lines of ``SACCT_FIELDS``.

    A job's line gives its state, exit code, times and nodes; its steps' lines (``N.batch``,
    ``N.0``, ...) give the peak memory, of which the job keeps the largest.
    """
    import pandas as pd

    jobs: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != len(SACCT_FIELDS):
            raise AccountingError(
                f"unexpected sacct output, line {number}: {line!r} has {len(fields)} "
                f"|-separated fields, not the {len(SACCT_FIELDS)} asked for"
            )
        record = dict(zip(SACCT_FIELDS, fields, strict=True))
        job_id, _, step = record["JobID"].partition(".")
        if not step:
            jobs[job_id] = _job(record)
        elif job_id in jobs and (rss := parse_size(record["MaxRSS"])) is not None:
            jobs[job_id]["max_rss"] = max(jobs[job_id]["max_rss"] or 0, rss)
    frame = pd.DataFrame(list(jobs.values()), columns=_COLUMNS)
    for column in ("exit_code", "signal", "max_rss", "req_mem"):
        frame[column] = frame[column].astype("Int64")
    frame["state"] = frame["state"].astype("category")
    frame["elapsed"] = pd.to_timedelta(frame["elapsed"].astype("Float64"), unit="s")
    for column in ("submit", "start", "end"):
        frame[column] = pd.to_datetime(
            frame[column], format="%Y-%m-%dT%H:%M:%S", errors="coerce", utc=True
        )
    return frame


def _job(record: dict[str, str]) -> dict[str, Any]:
    exit_code, signal = parse_exit_code(record["ExitCode"])
    nodes = record["NodeList"]
    return {
        "job_id": record["JobID"],
        "job_name": record["JobName"],
        "slurm_partition": record["Partition"],
        "state": normalise_state(record["State"]),
        "exit_code": exit_code,
        "signal": signal,
        "elapsed": parse_elapsed(record["Elapsed"]),
        "max_rss": parse_size(record["MaxRSS"]),
        "req_mem": parse_size(record["ReqMem"]),
        "node_list": None if nodes in ("", "None assigned") else nodes,
        "submit": record["Submit"],
        "start": record["Start"],
        "end": record["End"],
    }


def normalise_state(state: str) -> str | None:
    """``CANCELLED by 0`` → ``CANCELLED`` (and ``CANCELLED+``, sacct's cut form, too)."""
    words = state.split()
    return words[0].rstrip("+") if words else None


def parse_exit_code(text: str) -> tuple[int | None, int | None]:
    """sacct's ``code:signal`` → ``(code, signal)``; ``(None, None)`` when empty."""
    code, _, signal = text.partition(":")
    if not code.isdigit():
        return None, None
    return int(code), int(signal) if signal.isdigit() else None


def parse_size(text: str) -> int | None:
    """A SLURM memory size (``424696K``, ``1000M``, ``1.50G``; ``ReqMem``'s old ``n``/``c``
    suffix ignored) in bytes, with K = 1024; ``None`` when empty."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        return None
    number, unit = match.groups()
    return round(float(number) * _UNITS[unit])


def parse_elapsed(text: str) -> int | None:
    """``[D-][HH:]MM:SS`` in seconds; ``None`` when empty or ``INVALID``."""
    match = _ELAPSED.fullmatch(text.strip())
    if match is None:
        return None
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def _without_prefixes(line: str) -> str:
    """``sacct: error: Problem talking…`` → ``Problem talking…``."""
    return re.sub(r"^(?:sacct:\s*)?(?:error:\s*)?", "", line.strip())
