"""SLURM's accounting of a run's batch jobs (``provtask.analysis.sacct``, ``provtask jobs``).

The parser is checked on real ``sacct --parsable2`` output, captured on the local SLURM of
``.ci/start-slurm.sh`` (``TZ=UTC sacct --parsable2 --noheader --jobs=... --format=<SACCT_FIELDS>``)
in ``tests/data/sacct_parsable2.txt``: a completed job, two provtask worker jobs cancelled
by provtask, a job whose time limit was cut (TIMEOUT), one killed for using 400 MB with
100 MB asked (FAILED, signal 9: without cgroups SLURM enforces memory by polling and does
not say OUT_OF_MEMORY), one exiting 3, one cancelled while held, and a two-node job.

The live tests run one DAG over three batch jobs of the local SLURM and end them three ways.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from slurm import require_accounting, wait_until_gone

import provtask
from provtask import Store
from provtask.analysis.sacct import (
    job_accounting,
    normalise_state,
    parse_elapsed,
    parse_exit_code,
    parse_sacct,
    parse_size,
    run_sacct,
)
from provtask.cli import main
from provtask.errors import AccountingError

DATA = Path(__file__).parent / "data"
DAGS = Path(__file__).parent / "dags"
KIB = 1024
MIB = 2**20


# -- the parser, on captured output -------------------------------------------------------
@pytest.fixture(scope="module")
def captured() -> pd.DataFrame:
    return parse_sacct((DATA / "sacct_parsable2.txt").read_text()).set_index("job_id")


def test_one_row_per_job_with_the_states_sacct_gave(captured):
    assert list(captured.index) == ["3", "9", "10", "11", "12", "13", "14", "15"]
    assert dict(captured["state"]) == {
        "3": "COMPLETED",
        "9": "CANCELLED",  # "CANCELLED by 0": cancelled by root (provtask's scancel)
        "10": "CANCELLED",
        "11": "TIMEOUT",
        "12": "FAILED",
        "13": "FAILED",
        "14": "CANCELLED",
        "15": "COMPLETED",
    }
    assert isinstance(captured["state"].dtype, pd.CategoricalDtype)


def test_exit_codes_and_signals(captured):
    assert captured.loc["13", ["exit_code", "signal"]].tolist() == [3, 0]
    assert captured.loc["12", ["exit_code", "signal"]].tolist() == [0, 9]  # SIGKILL: memory
    assert captured.loc["3", ["exit_code", "signal"]].tolist() == [0, 0]


def test_memory_in_bytes_from_the_largest_step(captured):
    # MaxRSS lives on the steps: the batch step (9.batch), or an srun step (15.0 > 15.batch).
    assert captured.loc["9", "max_rss"] == 223424 * KIB
    assert captured.loc["15", "max_rss"] == 64896 * KIB
    assert captured.loc["12", "max_rss"] == 424696 * KIB
    assert captured.loc["12", "req_mem"] == 100 * MIB
    assert captured.loc["12", "max_rss"] > captured.loc["12", "req_mem"]  # why it was killed
    assert pd.isna(captured.loc["3", "max_rss"])  # no sample before the job ended
    assert captured["max_rss"].dtype == "Int64"


def test_elapsed_times_and_nodes(captured):
    assert captured.loc["11", "elapsed"] == pd.Timedelta(seconds=10)
    assert captured.loc["11", "start"] == pd.Timestamp("2026-11-25T07:16:24", tz="UTC")
    assert captured.loc["11", "end"] - captured.loc["11", "start"] == pd.Timedelta(seconds=10)
    assert captured.loc["15", "node_list"] == "node[2-3]"
    assert pd.isna(captured.loc["14", "node_list"])  # "None assigned": never ran
    assert captured.loc["14", "elapsed"] == pd.Timedelta(0)


@pytest.mark.parametrize(
    ("text", "size"),
    [("424696K", 424696 * KIB), ("954M", 954 * MIB), ("1.50G", 3 * 2**29), ("0", 0),
     ("4000Mn", 4000 * MIB), ("", None), ("16?", None)],
)  # fmt: skip
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("00:00:41", 41), ("1-02:03:04", 93784), ("12:05", 725), ("INVALID", None), ("", None)],
)
def test_elapsed(text, seconds):
    assert parse_elapsed(text) == seconds


def test_states_and_exit_codes():
    assert normalise_state("CANCELLED by 4711") == "CANCELLED"
    assert normalise_state("CANCELLED+") == "CANCELLED"  # sacct's cut form
    assert normalise_state("OUT_OF_MEMORY") == "OUT_OF_MEMORY"
    assert normalise_state("NODE_FAIL") == "NODE_FAIL"
    assert parse_exit_code("0:125") == (0, 125)
    assert parse_exit_code("") == (None, None)


def test_unexpected_output_is_a_clear_error():
    with pytest.raises(AccountingError, match=r"line 2: '12\|hog' has 2 \|-separated fields"):
        parse_sacct("3|wrap|cpu|COMPLETED|0:0||1000M|00:00:00|node1|x|x|x\n12|hog\n")


def test_no_sacct_on_the_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AccountingError, match=r"sacct is not installed.*without --sacct"):
        run_sacct(["1"])


def test_a_run_without_batch_jobs_needs_no_sacct(client, store_dir, load_dag, monkeypatch):
    result = load_dag("edge_cases", "flaky").run(
        client=client, store=store_dir, params={"marker_dir": str(store_dir.parent)}
    )
    monkeypatch.setenv("PATH", "")  # sacct is not even looked for
    assert job_accounting(Store(store_dir), result.run_id).empty
    out = CliRunner().invoke(main, ["jobs", result.run_id, "--sacct", "--store", str(store_dir)])
    assert out.exit_code == 0, out.output
    assert f"run {result.run_id} submitted no batch jobs" in out.output


# -- live: one run, three batch jobs, three endings --------------------------------------
@dataclass
class Ended:
    store: Store
    run_id: str
    accounting: pd.DataFrame  # job_accounting(...) indexed by partition
    waited: float  # s from cutting the time limit to the end of the run


def clusters_file(tmp_path: Path) -> Path:
    """Three one-job partitions on the local SLURM's cpu nodes, 1 GB each; the worker of
    "small" does not kill itself near that limit, so SLURM does."""
    common = {
        "scheduler": "slurm",
        "queue": "cpu",
        "cores": 1,
        "memory": "1GB",
        "walltime": "00:10:00",
        "max-jobs": 1,
        "idle-timeout": "5s",
        "log-directory": str(tmp_path / "logs"),
    }
    no_nanny_kill = "export DASK_DISTRIBUTED__WORKER__MEMORY__TERMINATE=False"
    partitions = {
        "cpu": common,
        "long": common,
        "small": {**common, "job-script-prologue": [no_nanny_kill]},
    }
    path = tmp_path / "clusters.yaml"
    path.write_text(yaml.safe_dump({"default": "cpu", "partitions": partitions}))
    return path


@pytest.fixture(scope="module")
def ended(tmp_path_factory) -> Ended:
    require_accounting()
    tmp = tmp_path_factory.mktemp("sacct")
    started = tmp / "stuck-started"
    dag = provtask.load_dag_file(DAGS / "job_endings.py")
    handle = dag.submit(
        params={"started": str(started)}, store=tmp / "store", clusters=clusters_file(tmp)
    )
    store = Store(tmp / "store")
    deadline = time.monotonic() + 90
    while not started.exists() and time.monotonic() < deadline and not handle.wait(0.2):
        pass
    assert started.exists(), "the 'stuck' task never started"
    jobs = store.jobs(handle.run_id).set_index("partition")
    long_job = jobs.loc["long", "job_id"]
    cut = time.monotonic()
    # Time limits are whole minutes; 0 ends the job at slurmctld's next check (<= 30 s).
    subprocess.run(["scontrol", "update", f"JobId={long_job}", "TimeLimit=0"], check=True)
    result = handle.result(timeout=120)
    waited = time.monotonic() - cut
    assert not result.ok  # stuck and hog lost their workers
    assert wait_until_gone(set(store.jobs(handle.run_id)["job_id"])) == set()
    accounting = job_accounting(store, handle.run_id).set_index("partition")
    return Ended(store, handle.run_id, accounting, waited)


def test_each_job_shows_how_it_ended(ended):
    accounting = ended.accounting
    assert sorted(accounting.index) == ["cpu", "long", "small"]
    assert accounting.loc["long", "state"] == "TIMEOUT"
    assert accounting.loc["cpu", "state"] == "CANCELLED"  # provtask cancelled it, idle
    assert accounting.loc["cpu", "recorded_state"] == "CANCELLED"
    assert accounting.loc["cpu", "exit_code"] == 0
    small = accounting.loc["small"]
    assert (small["state"], small["signal"]) == ("FAILED", 9)  # killed over its memory
    assert abs(small["req_mem"] - 10**9) < MIB  # 1GB asked, in whole MiB
    assert small["max_rss"] > small["req_mem"]
    attempts = ended.store.attempts(ended.run_id).set_index("task_id")
    assert attempts.loc["hog", "status"] == "lost"  # killed while the task ran
    assert (accounting["workers"] == 1).all()


def test_elapsed_and_nodes_agree_with_the_store(ended):
    workers = ended.store.workers(ended.run_id).set_index("batch_job_id")
    run = ended.store.run(ended.run_id)
    for partition, job in ended.accounting.iterrows():
        worker = workers.loc[job["job_id"]]
        elapsed = job["elapsed"].total_seconds()
        # sacct counts whole seconds from the job's start: the worker lived inside the job,
        # and the job started after provtask submitted it and ended before the run did.
        assert elapsed >= worker["lifetime"].total_seconds() - 2, partition
        assert elapsed <= run["ended_at"] - job["submitted_at"].timestamp() + 2, partition
        assert job["node_list"] == worker["node"], partition
        assert job["max_rss"] > 50 * MIB, partition  # a Dask worker, sampled every second
    assert ended.accounting.loc["long", "end"] <= pd.Timestamp(run["ended_at"], unit="s", tz="UTC")


def test_provtask_jobs_with_sacct(ended):
    args = ["jobs", ended.run_id, "--store", str(ended.store.root)]
    table = CliRunner().invoke(main, [*args, "--sacct"])
    assert table.exit_code == 0, table.output
    lines = {line.split()[1]: line for line in table.output.splitlines()[1:]}
    assert "TIMEOUT" in lines["long"] and "FAILED" in lines["small"]
    assert "MB" in lines["small"]  # MaxRSS shown in MB
    records = json.loads(CliRunner().invoke(main, [*args, "--sacct", "--json"]).output)
    by_partition = {record["partition"]: record for record in records}
    assert by_partition["long"]["state"] == "TIMEOUT"
    assert by_partition["small"]["max_rss"] == ended.accounting.loc["small", "max_rss"]
    plain = json.loads(CliRunner().invoke(main, [*args, "--json"]).output)
    assert {record["partition"] for record in plain} == {"cpu", "long", "small"}
    assert "exit_code" not in plain[0]  # without --sacct: only what provtask recorded


def test_accounting_disabled_is_a_clear_error(ended, tmp_path, monkeypatch):
    """sacct reads slurm.conf: a copy without accounting gives SLURM's own message."""
    scontrol = subprocess.run(
        ["scontrol", "show", "config"], capture_output=True, text=True, check=True
    ).stdout
    conf = Path(next(line.split("=", 1)[1].strip() for line in scontrol.splitlines()
                     if line.startswith("SLURM_CONF")))  # fmt: skip
    copy = tmp_path / "slurm.conf"
    copy.write_text(
        "".join(
            "AccountingStorageType=accounting_storage/none\n"
            if line.startswith("AccountingStorageType=")
            else line
            for line in conf.read_text().splitlines(keepends=True)
        )
    )
    monkeypatch.setenv("SLURM_CONF", str(copy))
    out = CliRunner().invoke(
        main, ["jobs", ended.run_id, "--sacct", "--store", str(ended.store.root)]
    )
    assert out.exit_code == 1
    assert "sacct: Slurm accounting storage is disabled;" in out.output
    assert "without --sacct" in out.output
