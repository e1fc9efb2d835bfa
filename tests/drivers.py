"""``provtask`` commands started as a user starts them: a real process with its own store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def run_provtask(
    *args: str, store: Path, cwd: Path = ROOT, timeout: float = 120, env: dict | None = None
) -> subprocess.CompletedProcess:
    """``provtask ARGS`` to the end (``PROVTASK_STORE=store``, plus ``env``), output as text."""
    return subprocess.run(
        [sys.executable, "-m", "provtask.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PROVTASK_STORE": str(store), **(env or {})},
        cwd=cwd,
    )


def start_provtask(
    *args: str, store: Path, cwd: Path, capture: bool = False, own_session: bool = False
) -> subprocess.Popen:
    """``provtask ARGS`` in the background (``PROVTASK_STORE=store``). ``capture`` keeps its
    output as text; ``own_session`` lets a test kill it with its workers (``os.killpg``)."""
    output = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "provtask.cli", *args],
        cwd=cwd,
        env={**os.environ, "PROVTASK_STORE": str(store)},
        stdout=output,
        stderr=output,
        text=capture,
        start_new_session=own_session,
    )
