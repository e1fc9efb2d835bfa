"""The benchmark command runs (figures are not checked: benchmarks are not tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_benchmark_command_prints_the_table_with_targets():
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "dag_build"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = done.stdout.splitlines()
    build = next(line for line in lines if line.startswith("DAG: build + validate s"))
    measured = build.removeprefix("DAG: build + validate s").split()[0]
    assert float(measured) > 0  # a figure was measured, not left blank
    assert "peak RSS MB" in done.stdout
