"""provtask: DAGs of Python and MPI tasks on Dask/HPC clusters, with full provenance.

``import provtask`` is light: Dask, pandas and the engine load when a run starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .dag import DAG
from .errors import (
    AccountingError,
    BatchJobError,
    ConfigError,
    DAGError,
    DAGFileError,
    IntegrityError,
    MPIError,
    NotFoundError,
    ParamError,
    ProvtaskError,
    ResourceError,
    RunFailed,
    RunInterrupted,
    StoreError,
    TaskTimeout,
    UnhashableValue,
)
from .states import AttemptStatus, RunStatus, TaskState
from .tasks import mpi_task, task
from .version import __version__ as __version__

if TYPE_CHECKING:
    from .engine.handle import RunHandle, RunResult
    from .mpi import MPICommand, MPIRun
    from .store import Store

_LAZY = {
    "Store": ("provtask.store", "Store"),
    "RunHandle": ("provtask.engine.handle", "RunHandle"),
    "RunResult": ("provtask.engine.handle", "RunResult"),
    "run": ("provtask.engine.api", "run"),
    "submit": ("provtask.engine.api", "submit"),
    "load_dag_file": ("provtask.dagfile", "load_dag_file"),
    "replay": ("provtask.replay_plan", "replay"),
    "MPICommand": ("provtask.mpi", "MPICommand"),
    "MPIRun": ("provtask.mpi", "MPIRun"),
}


def __getattr__(name: str) -> Any:
    import importlib

    if name in _LAZY:
        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    if name == "analysis":  # provtask.analysis.efficiency(...) without importing it first
        return importlib.import_module("provtask.analysis")
    raise AttributeError(f"module 'provtask' has no attribute {name!r}")


__all__ = [
    "DAG",
    "AccountingError",
    "AttemptStatus",
    "BatchJobError",
    "ConfigError",
    "DAGError",
    "DAGFileError",
    "IntegrityError",
    "MPICommand",
    "MPIError",
    "MPIRun",
    "NotFoundError",
    "ParamError",
    "ProvtaskError",
    "ResourceError",
    "RunFailed",
    "RunHandle",
    "RunInterrupted",
    "RunResult",
    "RunStatus",
    "Store",
    "StoreError",
    "TaskState",
    "TaskTimeout",
    "UnhashableValue",
    "load_dag_file",
    "mpi_task",
    "replay",
    "run",
    "submit",
    "task",
]
