"""Submitting batch jobs politely, on the real local SLURM (``.ci/start-slurm.sh``).

Submissions of a partition are spaced by its ``max-submit-rate``, and a submission refused
because the user's submit limit is reached is recorded and tried again later; the run does
not fail.

The local SLURM enforces association limits (``AccountingStorageEnforce=limits``): the
end-to-end test sets root's ``MaxSubmitJobs`` to 1 with sacctmgr and holds that one slot
with a job of its own, so the real sbatch refuses the run's job until that job ends.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from slurm import require_slurm, wait_until_gone, write_clusters

import provtask
from provtask import Store
from provtask.clusters.config import parse_clusters
from provtask.clusters.submit_rate import Backoff, SubmitPacer, is_submit_limit
from provtask.errors import ConfigError, NotFoundError

DAGS = Path(__file__).parent / "dags"
# What sbatch prints for a QOS MaxSubmitJobsPerUser limit, an association MaxSubmitJobs
# limit, and a per-job limit (which waiting never clears), as users reported them.
QOS_LIMIT = (
    "sbatch: error: QOSMaxSubmitJobPerUserLimit\n"
    "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy "
    "(job submit limit, user's size and/or time limits)"
)
ASSOC_LIMIT = QOS_LIMIT.replace("QOSMaxSubmitJobPerUserLimit", "AssocMaxSubmitJobLimit")
PER_JOB_LIMIT = QOS_LIMIT.replace("QOSMaxSubmitJobPerUserLimit", "QOSMaxWallDurationPerJobLimit")


def clusters_file(tmp_path: Path, **settings: object) -> Path:
    """One cpu partition of the local SLURM, one core per job."""
    cpu = {
        "queue": "cpu",
        "cores": 1,
        "memory": "1GB",
        "walltime": "00:10:00",
        "job-name": "wall15-submit",
        "idle-timeout": "5s",
        **settings,
    }
    return write_clusters(tmp_path, {"cpu": cpu})


def test_submit_limit_refusals_are_told_from_other_refusals():
    assert is_submit_limit(QOS_LIMIT) and is_submit_limit(ASSOC_LIMIT)
    assert not is_submit_limit(PER_JOB_LIMIT)  # the job itself is too big: waiting is no use
    assert not is_submit_limit("sbatch: error: invalid partition specified: nope")


def test_pauses_double_up_to_a_ceiling_and_start_again_after_a_submission():
    backoff = Backoff()
    pauses = [backoff.refused() for _ in range(9)]
    assert pauses[:3] == [5.0, 10.0, 20.0] and max(pauses) == 300.0
    backoff.accepted()
    assert backoff.refused() == 5.0


def test_the_pacer_allows_a_short_burst_then_hands_out_slots_a_fixed_interval_apart():
    pacer = SubmitPacer(per_minute=30)  # a burst of 3, then one every 2 s
    waits = [pacer.reserve() for _ in range(5)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] == pytest.approx(2.0, abs=0.1) and waits[4] == pytest.approx(4.0, abs=0.1)
    assert SubmitPacer(per_minute=6).burst == 1


@pytest.mark.parametrize("rate", [0, -1, "fast", True])
def test_a_bad_max_submit_rate_is_refused(rate):
    partition = {"scheduler": "slurm", "cores": 1, "memory": "1GB", "max-submit-rate": rate}
    with pytest.raises(ConfigError, match="max-submit-rate: expected a number of jobs per minute"):
        parse_clusters({"default": "cpu", "partitions": {"cpu": partition}})


def test_submissions_are_spaced_by_max_submit_rate(tmp_path, store_dir):
    require_slurm()
    dag = provtask.load_dag_file(DAGS / "slow_on_cpu.py")
    # 10 a minute: one at a time (no burst), 6 s apart
    config = clusters_file(tmp_path, **{"max-jobs": 3, "max-submit-rate": 10})
    result = dag.run(params={"n": 3, "seconds": 4}, store=store_dir, clusters=config, cache=False)
    assert result.ok, result.errors
    jobs = Store(store_dir).jobs(result.run_id).sort_values("submitted_at")
    assert len(jobs) == 3
    gaps = jobs["submitted_at"].diff().dropna().dt.total_seconds()
    assert (gaps >= 4.5).all(), gaps.tolist()  # 6 s, less what one sbatch may take
    assert wait_until_gone(set(jobs["job_id"])) == set()


@pytest.fixture
def submit_limit_reached() -> Iterator[str]:
    """root may have one job submitted at a time, and a job of the test's own holds it: the
    run's submissions are refused by SLURM until the test cancels that job. Yields its id;
    the limit is lifted at the end whatever happened."""
    require_slurm()

    def limit(value: int) -> None:
        subprocess.run(
            [
                "sacctmgr",
                "-i",
                "modify",
                "user",
                "where",
                "name=root",
                "set",
                f"MaxSubmitJobs={value}",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )

    limit(1)
    try:
        deadline = time.monotonic() + 30  # slurmctld hears of the new limit from slurmdbd
        while True:
            holder = (
                subprocess.run(
                    [
                        "sbatch",
                        "--parsable",
                        "-p",
                        "cpu",
                        "-J",
                        "provtask-test-limit-holder",
                        "--wrap",
                        "sleep 20",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=True,
                )
                .stdout.strip()
                .split(";")[0]
            )
            probe = subprocess.run(
                ["sbatch", "--parsable", "-p", "cpu", "--wrap", "true"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            if probe.returncode != 0:
                assert is_submit_limit(probe.stderr), probe.stderr
                break
            subprocess.run(["scancel", holder, probe.stdout.strip().split(";")[0]], timeout=60)
            assert time.monotonic() < deadline, "slurmctld never enforced MaxSubmitJobs=1"
            time.sleep(1)
        yield holder
    finally:
        limit(-1)
        subprocess.run(["scancel", "--name", "provtask-test-limit-holder"], timeout=60)


def test_a_run_waits_out_submit_limit_refusals_and_records_them(
    tmp_path, store_dir, submit_limit_reached
):
    dag = provtask.load_dag_file(DAGS / "slow_on_cpu.py")
    config = clusters_file(tmp_path, **{"max-jobs": 1})
    params = {"n": 2, "seconds": 1}
    handle = dag.submit(params=params, store=store_dir, clusters=config, cache=False)
    store = Store(store_dir)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            refusals = (store.jobs(handle.run_id)["state"] == "REFUSED").sum()
        except NotFoundError:  # the run's row is not committed yet
            refusals = 0
        if refusals >= 2:
            break
        time.sleep(0.5)
    subprocess.run(["scancel", submit_limit_reached], check=True, timeout=60)  # a slot frees
    result = handle.result(timeout=300)
    assert result.ok, result.errors

    jobs = store.jobs(result.run_id).sort_values("submitted_at")
    refused = jobs[jobs["state"] == "REFUSED"]
    assert len(refused) >= 2
    assert refused["error"].str.contains("AssocMaxSubmitJobLimit").all()  # SLURM's own words
    assert list(refused["reason"])[:2] == [
        "submit limit reached; tried again in 5 s",
        "submit limit reached; tried again in 10 s",
    ]
    assert refused["job_id"].isna().all()
    submitted = jobs[jobs["job_id"].notna()]
    assert len(submitted) == 1  # a later try went through, and ran both tasks
    assert submitted["submitted_at"].iloc[0] > refused["submitted_at"].iloc[-1]
    attempts = store.attempts(run=result.run_id)
    assert set(attempts["batch_job_id"].dropna()) == set(submitted["job_id"])
    assert wait_until_gone(set(submitted["job_id"])) == set()
