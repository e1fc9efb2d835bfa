"""CLI conventions a user relies on: -h, RUN defaulting to latest, names checked with a hint,
and one JSON form of times and durations, as docs/cli.md documents it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from drivers import run_provtask

from provtask import DAG, DAGError, task

ROOT = Path(__file__).parent.parent
DAGS = Path(__file__).parent / "dags"
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


provtask = run_provtask


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> Path:
    """A store holding one run of the noisy sweep (one failed element)."""
    store = tmp_path_factory.mktemp("conventions") / "store"
    done = provtask("run", str(DAGS / "noisy_sweep.py"), "--workers", "2", store=store)
    assert done.returncode == 1, done.stderr
    return store


def documented_json(command: str) -> list | dict:
    """The JSON example docs/cli.md shows after ``$ provtask COMMAND``."""
    text = (ROOT / "docs" / "cli.md").read_text()
    block = re.search(rf"\$ provtask {re.escape(command)}\n(.*?)```", text, re.DOTALL)
    assert block, f"docs/cli.md shows no output of 'provtask {command}'"
    return json.loads(block.group(1))


def kinds(record: dict) -> dict[str, str]:
    """Each field's kind: time, seconds, null or the JSON type."""

    def kind(value: object) -> str:
        if isinstance(value, str) and ISO_UTC.match(value):
            return "time"
        return type(value).__name__

    return {key: kind(value) for key, value in record.items()}


@pytest.mark.parametrize("command", ["tasks latest --json", "show latest --json"])
def test_json_times_and_durations_are_as_documented(ran, command):
    documented = documented_json(command)
    shown = json.loads(provtask(*command.split(), store=ran).stdout)
    if isinstance(documented, list):
        documented, shown = documented[0], shown[0]  # make_grid: a task that ran
    assert kinds(shown)["started_at"] == kinds(documented)["started_at"] == "time"
    for key, value in shown.items():
        if key.endswith("_at") and value is not None:
            assert ISO_UTC.match(value), (key, value)
        if "duration" in key and value is not None:
            assert isinstance(value, float), (key, value)
    assert set(documented) <= set(shown)  # every documented field, in its documented form
    assert {k: kinds(shown)[k] for k in documented} == kinds(documented)


def test_every_json_output_uses_the_same_forms(ran):
    outputs = {
        "runs": json.loads(provtask("runs", "--json", store=ran).stdout)[0],
        "lineage": json.loads(
            provtask("lineage", "latest", "simulate[1]", "--json", store=ran).stdout
        )[0],
        "efficiency": json.loads(provtask("efficiency", "--json", store=ran).stdout)[-1],
    }
    assert ISO_UTC.match(outputs["runs"]["started_at"])
    assert isinstance(outputs["runs"]["duration"], float)
    assert ISO_UTC.match(outputs["lineage"]["started_at"])
    assert outputs["efficiency"]["partition"] == "all"
    assert isinstance(outputs["efficiency"]["allocated"], float)
    raw = provtask("lineage", "latest", "simulate[1]", "--json", store=ran).stdout
    assert "\\/" not in raw  # no escaped slashes


def test_h_run_defaults_to_latest_and_unknown_names_get_a_hint(ran):
    for args in (["-h"], ["tasks", "-h"], ["logs", "-h"]):
        helped = provtask(*args, store=ran)
        assert helped.returncode == 0 and helped.stdout.startswith("Usage:"), args
    shown = provtask("show", store=ran)
    assert shown.returncode == 0 and shown.stdout == provtask("show", "latest", store=ran).stdout
    assert provtask("efficiency", store=ran).returncode == 0
    typo = provtask("tasks", "--name", "simulat", store=ran)
    assert typo.returncode == 1
    assert "has no task named 'simulat' (did you mean 'simulate'?)" in typo.stderr
    labelled = provtask("show", store=ran).stderr
    assert "✗ simulate[2] (T=320 seed=2): builtins.FloatingPointError" in labelled


def test_analysis_functions_are_importable_from_provtask_analysis():
    code = "import provtask; print(provtask.analysis.efficiency.__module__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.strip() == "provtask.analysis.efficiency", done.stderr


def test_a_mistyped_keyword_is_named_with_the_closest_parameter():
    @task
    def simulate(steps: int, dt: float = 0.1) -> float:
        return steps * dt

    with DAG("typo"), pytest.raises(DAGError) as info:
        simulate(step=10)
    assert "unexpected keyword argument 'step' (did you mean 'steps'?)" in str(info.value)
