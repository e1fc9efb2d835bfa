"""The ``provtask`` command as a user runs it: real processes, real embedded cluster."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from drivers import run_provtask, start_provtask

from provtask import Store

ROOT = Path(__file__).parent.parent
DAGS = Path(__file__).parent / "dags"


provtask = run_provtask


def test_run_the_example_then_list_show_and_query(store_dir):
    ran = provtask("run", "dags/ensemble.py", "--param", "n=5", "--workers", "2", store=store_dir)
    assert ran.returncode == 0, ran.stderr
    assert "status success" in ran.stdout and "7 tasks" in ran.stdout

    runs = json.loads(provtask("runs", "--json", store=store_dir).stdout)
    assert [(r["dag_name"], r["status"], r["n_tasks"]) for r in runs] == [
        ("ensemble", "success", 7)
    ]
    run_id = runs[0]["run_id"]
    assert run_id in ran.stderr  # the run id is announced when the run starts

    shown = json.loads(provtask("show", "latest", "--json", store=store_dir).stdout)
    assert shown["run_id"] == run_id and shown["params"] == {"n": 5}
    by_name = {t["name"]: t for t in shown["tasks"]}
    assert by_name["simulate"]["success"] == 5 and by_name["summarise"]["success"] == 1

    tasks = json.loads(provtask("tasks", run_id[:12], "--json", store=store_dir).stdout)
    assert sorted(t["task_id"] for t in tasks)[:3] == ["make_inputs", "simulate[0]", "simulate[1]"]
    assert (
        json.loads(
            provtask("tasks", "latest", "--state", "failed", "--json", store=store_dir).stdout
        )
        == []
    )
    summary = Store(store_dir).output(run_id, "summarise")
    assert summary["runs"] == 5


def test_failing_run_exits_non_zero_and_names_the_error(store_dir):
    ran = provtask("run", str(DAGS / "failing.py"), "--no-progress", store=store_dir)
    assert ran.returncode == 1
    assert "boom: builtins.ValueError: bad input 2" in ran.stderr
    assert "status failed" in ran.stdout
    failed = json.loads(
        provtask("tasks", "latest", "--state", "failed", "--json", store=store_dir).stdout
    )
    assert [t["task_id"] for t in failed] == ["boom"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "dags/nope.py"], "DAG file 'dags/nope.py' does not exist"),
        (["run", "dags/ensemble.py", "--param", "m=3"], "unknown param 'm' for DAG 'ensemble'"),
        (["run", "dags/ensemble.py", "--param", "n=many"], "param 'n': cannot read 'many' as int"),
        (["run", "dags/ensemble.py", "--param", "n"], "expected NAME=VALUE"),
        (["run", "pyproject.toml"], "is not a Python (.py) file"),
        (["run", "tests/conftest.py"], "defines no DAG"),
        (["run", "tests/dags/edge_cases.py"], "defines several DAGs"),
        (["run", "tests/dags/edge_cases.py", "--dag", "nope"], "has no DAG named 'nope'"),
    ],
)
def test_bad_input_gives_a_clear_message_and_exit_code_2(store_dir, args, message):
    ran = provtask(*args, store=store_dir)
    assert ran.returncode == 2
    assert message in ran.stderr
    assert "Traceback" not in ran.stderr


def test_unknown_run_and_missing_store_are_clear_errors(tmp_path, store_dir):
    missing = provtask("runs", store=tmp_path / "nowhere")
    assert missing.returncode == 1 and "no provenance store" in missing.stderr
    provtask("run", "dags/convergence.py", "--no-progress", store=store_dir)
    unknown = provtask("show", "19990101", store=store_dir)
    assert unknown.returncode == 1 and "no run '19990101'" in unknown.stderr


def test_filters_are_parameters_not_sql(store_dir):
    provtask("run", "dags/convergence.py", "--no-progress", store=store_dir)
    for hostile in ["x' OR '1'='1", "a; DROP TABLE tasks; --", "%", "_", "ñ—✓"]:
        ran = provtask("tasks", "latest", "--name", hostile, "--json", store=store_dir)
        assert ran.returncode == 1 and f"has no task named {hostile!r}" in ran.stderr
    assert len(Store(store_dir).tasks("latest")) == 9


def test_ctrl_c_interrupts_the_run_and_records_it(store_dir):
    process = start_provtask(
        "run",
        str(DAGS / "edge_cases.py"),
        "--dag",
        "slow",
        "--param",
        "durations=[1, 1, 1, 1, 1, 1, 1, 1, 1, 1]",
        "--no-progress",
        store=store_dir,
        cwd=ROOT,
        capture=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if (store_dir / "provtask.db").exists():
            states = (
                Store(store_dir).tasks("latest")["state"]
                if not Store(store_dir).runs().empty
                else []
            )
            if "success" in list(states):
                break
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    store = Store(store_dir)
    assert store.run("latest")["status"] == "interrupted"
    states = set(store.tasks("latest").query("kind == 'element'")["state"])
    assert states <= {"success", "cancelled"} and "cancelled" in states


def test_efficiency_table_and_json(store_dir):
    provtask("run", "dags/convergence.py", "--no-progress", "--workers", "2", store=store_dir)
    shown = provtask("efficiency", "latest", store=store_dir)
    assert shown.returncode == 0 and "allocated" in shown.stdout and "%" in shown.stdout
    rows = json.loads(provtask("efficiency", "latest", "--json", store=store_dir).stdout)
    assert [r["partition"] for r in rows] == ["local", "all"]
    whole = rows[-1]
    assert whole["workers"] == 2 and 0 < whole["efficiency"] <= 1
    spent = sum(
        whole[c] for c in ("compute", "provenance", "failed", "startup", "scheduling", "idle")
    )
    assert abs(spent - whole["allocated"]) < 1e-6
