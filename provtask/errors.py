"""The error tree of provtask: every error a user can cause derives from ``ProvtaskError``.

Each error carries an ``exit_code`` that the CLI returns, and a message that says what went
wrong and what to do about it.
"""

from __future__ import annotations


class ProvtaskError(Exception):
    """Root of all provtask errors."""

    exit_code = 1


class ResourceError(ProvtaskError, ValueError):
    """A task's resource request is invalid (raised at decoration time)."""

    exit_code = 2


class DAGError(ProvtaskError):
    """A DAG is malformed: a cycle, an unknown name, a duplicate id, a bad call."""

    exit_code = 2


class ParamError(DAGError):
    """A DAG parameter is unknown or cannot be converted."""


class DAGFileError(ProvtaskError):
    """A DAG file is missing, fails to import, or defines no (or several) DAGs."""

    exit_code = 2


class StoreError(ProvtaskError):
    """The provenance store cannot be opened, migrated or read."""


class NotFoundError(StoreError):
    """A run, task or artifact asked for is not in the store."""


class IntegrityError(StoreError):
    """Stored bytes no longer match their recorded hash; nothing was unpickled."""


class ConfigError(ProvtaskError):
    """A clusters file is missing, unreadable or invalid (checked before any job is submitted)."""

    exit_code = 2


class BatchJobError(ProvtaskError):
    """A partition's batch jobs cannot start: refused, stuck pending, or ended early."""


class AccountingError(ProvtaskError):
    """SLURM's job accounting (``sacct``) is unavailable or answered something unexpected."""


class MPIError(ProvtaskError):
    """An MPI task cannot launch (no launcher, no executable) or its program failed."""


class TaskTimeout(ProvtaskError):
    """A task ran past its walltime and was killed (an MPI task: with all its ranks)."""


class UnhashableValue(ProvtaskError):
    """A value has no stable hash, so it cannot be part of a cache key.

    ``where`` locates the offending part inside the value (``[2]['k'].field``), and
    ``argument`` names the task argument holding it, when the caller knows it.
    """

    def __init__(self, problem: str, *, where: str = "", argument: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.where = where
        self.argument = argument

    def __str__(self) -> str:
        if self.argument is None:
            located = f" (at value{self.where})" if self.where else ""
            return (
                f"{self.problem}{located}; pass a supported type (docs/caching.md) or give the "
                "class a __provtask_hash__(self) -> bytes | str method"
            )
        return (
            f"argument {self.argument!r}: {self.problem} (at {self.argument}{self.where}); "
            "set cache=False on the task, give it a cache_key function, pass a supported type "
            "(docs/caching.md), or give the class a __provtask_hash__(self) -> bytes | str method"
        )


class RunFailed(ProvtaskError):
    """A run finished with failed tasks (the run itself is recorded in the store)."""

    def __init__(self, message: str, result: object | None = None) -> None:
        super().__init__(message)
        self.result = result


class RunInterrupted(ProvtaskError):
    """A run was stopped by Ctrl-C, SIGTERM or ``RunHandle.cancel``."""

    exit_code = 130
