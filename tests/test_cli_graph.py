"""provtask graph and provtask run --dry-run, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from drivers import run_provtask

ROOT = Path(__file__).parent.parent
SWEEP = str(Path(__file__).parent / "dags" / "partial_sweep.py")


provtask = run_provtask


def test_dry_run_says_what_would_run_and_what_is_cached_then_graph_draws_it(store_dir):
    before = provtask("run", SWEEP, "--dry-run", "--json", store=store_dir)
    assert before.returncode == 0, before.stderr
    assert [(p["task_id"], p["action"]) for p in json.loads(before.stdout)] == [
        ("make_grid", "run"),
        ("simulate", "run"),
        ("summarise", "run"),
    ]
    assert not store_dir.exists()  # nothing ran, nothing was recorded

    assert provtask("run", SWEEP, "--workers", "2", store=store_dir).returncode == 1
    again = provtask("run", SWEEP, "--dry-run", store=store_dir).stdout
    assert "  cached   make_grid [call, partition local]: from run " in again
    assert "simulate [map, partition local]: 4 elements" in again  # its list is stored
    assert "jobs: none (the embedded LocalCluster" in again
    changed = provtask("run", SWEEP, "--dry-run", "--param", "n=5", store=store_dir).stdout
    assert "  run      make_grid [call, partition local]: no stored output" in changed
    assert len(json.loads(provtask("runs", "--json", store=store_dir).stdout)) == 1

    declared = provtask("graph", SWEEP, store=store_dir).stdout
    assert '"make_grid" -> "simulate";' in declared and '"simulate" -> "summarise";' in declared
    assert 'label="simulate.map(…)"' in declared
    ran = provtask("graph", "latest", "--format", "mermaid", store=store_dir).stdout
    assert ran.startswith("flowchart LR\n")
    assert 'n1["simulate ×4: 1 failed, 3 success"]' in ran and "class n1 failed" in ran
    assert "n0 --> n1" in ran and "n1 --> n2" in ran
    drawn = provtask("graph", "latest", "--format", "svg", store=store_dir).stdout
    assert drawn.startswith("<svg") and drawn.count("<rect") == 3 and drawn.count("<line") == 2
