"""Following a run as a user does: logs of an element, progress in a batch log, watch."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from drivers import run_provtask, start_provtask

from provtask import NotFoundError, Store

ROOT = Path(__file__).parent.parent
DAGS = Path(__file__).parent / "dags"
LINE = re.compile(
    r"^\d{8}-\d{6}-[0-9a-f]{6} (\d+)/(\d+) done, (\d+) running, (\d+) failed, .*queued"
)


provtask = run_provtask


def start_gated(gate: Path, store: Path, own_session: bool = False) -> subprocess.Popen:
    """``provtask run`` of tests/dags/gated.py in the background: its tasks wait for ``gate``."""
    return start_provtask(
        "run",
        str(DAGS / "gated.py"),
        "--param",
        f"gate={gate}",
        "--workers",
        "2",
        "--no-progress",
        store=store,
        cwd=ROOT,
        capture=True,
        own_session=own_session,
    )


def test_logs_of_a_failed_element_and_progress_lines_in_a_batch_log(store_dir):
    ran = provtask(
        "run",
        str(DAGS / "noisy_sweep.py"),
        "--workers",
        "2",
        "--progress-interval",
        "0.2",
        store=store_dir,
    )
    assert ran.returncode == 1
    # stderr is a file here, as in an sbatch log: plain progress lines, the last one final.
    lines = [line for line in ran.stderr.splitlines() if LINE.match(line)]
    assert lines, ran.stderr
    assert LINE.match(lines[-1]).groups() == ("6", "6", "0", "1")
    assert "━" not in ran.stdout + ran.stderr  # no bar drawn into a file

    logs = provtask("logs", "latest", "simulate[2]", store=store_dir)
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.splitlines()[0].startswith("simulate[2] attempt 1/1 failed on ")
    assert "── stdout ──\nsimulating T=320\n" in logs.stdout
    assert "── stderr ──\nenergy diverged\n" in logs.stdout
    assert "FloatingPointError: diverged at T=320" in logs.stdout
    only = provtask("logs", "latest", "simulate[2]", "--stderr", store=store_dir)
    assert only.stdout == "energy diverged\n"
    ok = provtask("logs", "latest", "simulate[1]", "--traceback", store=store_dir)
    assert ok.returncode == 0 and ok.stdout == ""

    typo = provtask("logs", "latest", "simulat[2]", store=store_dir)
    assert typo.returncode == 1
    assert "has no task 'simulat[2]' (did you mean 'simulate[2]'?)" in typo.stderr
    never = provtask("logs", "latest", "summarise", store=store_dir)
    assert "has no attempts (state upstream_failed): it did not run" in never.stderr
    missing = provtask("logs", "latest", "simulate[2]", "--attempt", "3", store=store_dir)
    assert "has no attempt 3; it has [1]" in missing.stderr


def test_watch_follows_a_run_from_another_process(store_dir, tmp_path):
    gate = tmp_path / "gate"
    running = start_gated(gate, store_dir)
    try:
        run_id = running.stderr.readline().split()[1]  # "run <id> of DAG …": it is recorded
        watcher = subprocess.Popen(
            [sys.executable, "-m", "provtask.cli", "watch", run_id, "--progress-interval", "0.2"],
            cwd=ROOT,
            env={**os.environ, "PROVTASK_STORE": str(store_dir)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        seen = []
        for line in watcher.stderr:  # the run cannot end before the gate opens
            seen.append(line)
            match = LINE.match(line)
            if match and match.group(2) == "3" and int(match.group(3)) >= 1:
                break
        gate.touch()
        out, err = watcher.communicate(timeout=60)
        assert watcher.returncode == 0, err
        assert LINE.match((seen + err.splitlines())[-1]).groups()[:2] == ("3", "3")
        assert "status success" in out and "wait_for" in out
    finally:
        gate.touch()
        running.communicate(timeout=60)
    assert running.returncode == 0


def test_run_json_prints_the_run_record_on_stdout(store_dir):
    ran = provtask("run", str(DAGS / "failing.py"), "--json", "--no-progress", store=store_dir)
    assert ran.returncode == 1
    record = json.loads(ran.stdout)
    assert record["status"] == "failed" and record["dag_name"] == "failing"
    assert record["run_id"] in ran.stderr


def test_ctrl_c_prints_one_line_and_records_where_in_flight_attempts_ran(store_dir, tmp_path):
    gate = tmp_path / "gate"  # never opened: the elements run until interrupted
    running = start_gated(gate, store_dir, own_session=True)
    announced = running.stderr.readline()
    while len(list(tmp_path.glob("started-*"))) < 2:  # both workers are in a task
        time.sleep(0.05)
    os.killpg(running.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _, stderr = running.communicate(timeout=90)
    assert running.returncode == 130
    run_id = announced.split()[1]
    assert stderr.splitlines() == [
        f"interrupted: cancelling run {run_id}; what ran is recorded (provtask show {run_id})"
    ]
    attempts = Store(store_dir).attempts(run_id)
    started = attempts[attempts["started_at"].notna()]
    assert len(started) == 2 and set(started["status"]) == {"cancelled"}
    assert started["worker"].str.startswith("tcp://").all()


SCRIPT = """\
from provtask import DAG, task

@task
def double(x: int) -> int:
    return 2 * x

with DAG("nb") as dag:
    double.map([1, 2, 3])
"""


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("file", "nb.py line 9 starts a run at the top level of the script"),
        ("stdin", "the main script comes from '<stdin>', which the embedded cluster's worker"),
    ],
)
def test_script_mode_traps_say_what_to_do_before_any_worker_starts(tmp_path, how, message):
    source = SCRIPT + 'print(dag.run(store="store").status)\n'
    (tmp_path / "nb.py").write_text(source)
    args = ["nb.py"] if how == "file" else ["-"]
    done = subprocess.run(
        [sys.executable, *args],
        input=None if how == "file" else source,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("provtask.errors.DAGFileError: " + message), done.stderr
    assert """'if __name__ == "__main__":'""" in last
    assert "Nanny" not in done.stderr and not (tmp_path / "store").exists()


def test_a_guarded_script_runs(tmp_path):
    run = '    print(dag.run(store="store", n_workers=1).status)\n'
    source = SCRIPT + 'if __name__ == "__main__":\n' + run
    (tmp_path / "guarded.py").write_text(source)
    done = subprocess.run(
        [sys.executable, "guarded.py"], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert done.stdout.strip() == "RunStatus.SUCCESS", done.stderr


def test_logs_follow_waits_for_a_running_attempt_to_end(store_dir, tmp_path):
    gate = tmp_path / "gate"
    running = start_gated(gate, store_dir)
    try:
        run_id = running.stderr.readline().split()[1]
        while not (tmp_path / "started-0").exists() or not _recorded(store_dir, run_id):
            time.sleep(0.05)
        follower = subprocess.Popen(
            [sys.executable, "-m", "provtask.cli", "logs", run_id, "wait_for[0]", "--follow"],
            cwd=ROOT,
            env={**os.environ, "PROVTASK_STORE": str(store_dir)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        waiting = follower.stderr.readline()  # the attempt cannot end before the gate opens
        assert waiting.startswith("wait_for[0] attempt 1/1 running on ")
        assert waiting.rstrip().endswith(": waiting for it to end…")
        gate.touch()
        out, _ = follower.communicate(timeout=60)
        assert follower.returncode == 0
        assert out.startswith("wait_for[0] attempt 1/1 success on ")
    finally:
        gate.touch()
        running.communicate(timeout=60)


def _recorded(store: Path, run_id: str) -> bool:
    """Whether the run's attempt rows are in the store yet (the writer batches them)."""
    try:
        return not Store(store, create=False).attempts(run_id, task="wait_for[0]").empty
    except NotFoundError:
        return False
