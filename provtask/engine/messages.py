"""What arrives in a run's inbox: the only way other threads talk to the engine's loop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..clusters.pool import Pool


@dataclass(frozen=True)
class Cancel:
    """Stop the run (``RunHandle.cancel``, Ctrl-C, SIGTERM, the process exiting)."""

    reason: str


@dataclass(frozen=True)
class PoolEvent:
    """An event a pool's workers or scheduler published on the run's topic (its ``op`` says
    which: ``attempts``, ``started``, ``worker``, ``worker-oom``, ``worker-left``)."""

    pool: Pool
    report: dict[str, Any]


Message = Cancel | PoolEvent
