"""Attempts running on a worker right now, so an interrupted run records where and since
when its in-flight attempts ran (their reports never come).

The worker side is a registry that ``execute_attempt`` keeps; the driver asks every worker
for it once, when it aborts.
"""

from __future__ import annotations

from typing import Any

# On a worker: attempt key -> (start time, worker address), while the attempt runs.
RUNNING: dict[str, tuple[float, str]] = {}


def running_here() -> dict[str, tuple[float, str]]:
    """Run on a worker by ``client.run``: its running attempts."""
    return dict(RUNNING)


def running_on(clients: list[Any]) -> dict[str, tuple[float, str]]:
    """Attempt key -> (start, worker) of what the clients' workers are running; a worker that
    fails to answer contributes nothing."""
    found: dict[str, tuple[float, str]] = {}
    for client in clients:
        if client.status != "running":
            continue
        try:
            answers = client.run(running_here, on_error="return")
        except OSError:
            continue
        for answer in answers.values():
            if isinstance(answer, dict):
                found.update(answer)
    return found
