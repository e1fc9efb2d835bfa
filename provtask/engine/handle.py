"""Handles on runs: ``RunHandle`` while a run goes on, ``RunResult`` once it has ended."""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RunFailed, RunInterrupted
from ..refs import Ref
from ..states import RunStatus, TaskState
from ..store import Store
from .messages import Cancel
from .progress import Progress

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class RunResult:
    """The outcome of a run: every task's state, and its value loaded from the store on demand."""

    run_id: str
    status: RunStatus
    store_path: Path
    states: dict[str, TaskState]
    errors: dict[str, str] = field(default_factory=dict)
    progress: Progress = field(default_factory=Progress)

    @property
    def ok(self) -> bool:
        return self.status is RunStatus.SUCCESS

    def __getitem__(self, task: str | Ref) -> Any:
        return self.value(task)

    def value(self, task: str | Ref) -> Any:
        """The output of a task (a list for a ``.map``), read and hash-checked from the store;
        ``task`` is its id or the reference its call returned."""
        store = Store(self.store_path, create=False)
        try:
            return store.output(self.run_id, task.node_id if isinstance(task, Ref) else task)
        finally:
            store.close()

    def tasks(self) -> pd.DataFrame:
        store = Store(self.store_path, create=False)
        try:
            return store.tasks(self.run_id)
        finally:
            store.close()

    def raise_for_status(self) -> RunResult:
        """Raise :class:`RunFailed` unless every task succeeded."""
        if not self.ok:
            failed = ", ".join(f"{t} ({e})" for t, e in list(self.errors.items())[:5])
            raise RunFailed(f"run {self.run_id} {self.status.value}: {failed}", self)
        return self


class RunHandle:
    """A run going on in the background; wait for it, watch it, or cancel it.

    ``await handle`` works in notebooks and other asyncio code.
    """

    def __init__(self, run_id: str, store_path: Path) -> None:
        self.run_id = run_id
        self.store_path = store_path
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.future: concurrent.futures.Future[RunResult] = concurrent.futures.Future()
        self._progress = Progress()

    def __repr__(self) -> str:
        state = "done" if self.done() else "running"
        return f"<RunHandle {self.run_id} {state}: {self._progress.summary()}>"

    def publish(self, progress: Progress) -> None:
        self._progress = progress

    def progress(self) -> Progress:
        """The latest counts of task states."""
        return self._progress

    def done(self) -> bool:
        return self.future.done()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the run has ended; False on timeout."""
        done, _ = concurrent.futures.wait([self.future], timeout=timeout)
        return bool(done)

    def result(self, timeout: float | None = None) -> RunResult:
        """Block until the run has ended and return its result.

        Raises :class:`RunInterrupted` if it was cancelled, or the engine's own error (a store
        that cannot be written, a cluster that cannot start).
        """
        result = self.future.result(timeout)
        if result.status is RunStatus.INTERRUPTED:
            raise RunInterrupted(
                f"run {self.run_id} was interrupted; {result.progress.summary()}. "
                "Tasks that finished are recorded in the store."
            )
        return result

    def cancel(self, reason: str = "cancelled") -> None:
        """Ask the engine to stop: in-flight tasks are cancelled, the run recorded interrupted."""
        if not self.done():
            self.inbox.put(Cancel(reason))

    def __await__(self) -> Generator[Any, None, RunResult]:
        yield from asyncio.wrap_future(self.future).__await__()
        return self.result()
