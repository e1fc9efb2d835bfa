"""One run from its first store row to its result, whatever raises on the way.

::

    start ─ writer ─ start_run ─ pools ─ engine.run ─┐   (any step may raise)
                                                     ▼
    end ─ abort in-flight ─ engine.close ─ pools.close (cancels batch jobs)
        ─ finish_run (or salvage) ─ writer.close ─ resolve the run's future

``writer.close`` asks the store writer process to snapshot a big run's tables after its last
commit; ``dag.run()`` does not wait for it (``Store.snapshot(run)`` does).

Every step of ``end`` runs even when the ones before it raised, and the run's future is
resolved last, in a ``finally``: ``RunHandle.wait()`` and ``dag.run()`` always return.
The first failure is the one reported.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..states import RunStatus
from ..store.snapshot import MIN_ROWS
from .handle import RunHandle, RunResult
from .heap import frozen_heap
from .recorder import RunRecorder

if TYPE_CHECKING:
    from ..runcontext import RunContext
    from ..store import Store
    from ..store.writer import StoreWriter
    from .pools import Pools
    from .runner import Engine


class RunLifecycle:
    """The resources of one run, and the final status they end with."""

    def __init__(self, handle: RunHandle, store: Store) -> None:
        self.handle = handle
        self.store = store
        self.writer: StoreWriter | None = None
        self.recorder: RunRecorder | None = None
        self.started = False  # the run's row is queued
        self.pools: Pools | None = None
        self.engine: Engine | None = None
        self.status = RunStatus.FAILED
        self.error: str | None = None
        self.failure: BaseException | None = None

    def execute(
        self,
        run_row: dict[str, Any],
        open_pools: Callable[[], Pools],
        make_engine: Callable[[RunRecorder, Pools], Engine],
        context: RunContext | None = None,
    ) -> None:
        """Run to the end; never raises, and resolves the handle's future in every case."""
        try:
            with frozen_heap():
                self._run(run_row, open_pools, make_engine, context)
        except BaseException as exc:
            self._failed(exc)
        finally:
            try:
                self._end()
            except BaseException as exc:  # each step of _end guards itself: a bug
                self._failed(exc)
            finally:
                self._resolve()

    def _run(
        self,
        run_row: dict[str, Any],
        open_pools: Callable[[], Pools],
        make_engine: Callable[[RunRecorder, Pools], Engine],
        context: RunContext | None,
    ) -> None:
        self.writer = self.store.writer()
        self.recorder = RunRecorder(self.writer, self.handle.run_id)
        self.recorder.start_run(run_row)
        self.started = True
        if context is not None:
            context.record(self.writer, self.handle.run_id)
        self.pools = open_pools()
        self.engine = make_engine(self.recorder, self.pools)
        self.status = self.engine.run()
        if self.status is RunStatus.INTERRUPTED:
            self.error = self.engine.cancel_reason

    def _failed(self, exc: BaseException, what: str = "") -> None:
        """Keep the first failure: the run is failed, with it as its error."""
        self.status = RunStatus.FAILED
        if self.failure is None:
            self.failure = exc
            self.error = what + describe_exception(exc)

    def _end(self) -> None:
        engine = self.engine
        if engine is not None:
            if self.failure is not None:
                with contextlib.suppress(BaseException):  # the first error is the one to report
                    engine.abort(f"the engine failed: {self.failure}")
            try:
                engine.close()
            except Exception as exc:
                self._failed(exc, "detaching from the pools failed: ")
        if self.pools is not None:
            errors = self.pools.close()
            if errors:
                self._failed(errors[0], "closing a pool failed (its batch jobs were cancelled): ")
        self._record_end()

    def _record_end(self) -> None:
        if self.writer is None:
            return  # the store could not be opened for writing: nothing can be recorded
        n_tasks = self.engine.n_tasks if self.engine is not None else 0
        try:
            if self.recorder is not None and self.started:
                self.recorder.finish_run(self.status, n_tasks, self.error)
            big = self.failure is None and n_tasks >= MIN_ROWS
            self.writer.close(snapshot=(self.store.root, self.handle.run_id) if big else None)
        except BaseException as exc:
            self._failed(exc)
            # The store failed (disk full…): one small update often still fits.
            self.writer.salvage(
                "runs",
                {"run_id": self.handle.run_id},
                {"status": RunStatus.FAILED.value, "ended_at": time.time(), "error": self.error},
            )

    def _resolve(self) -> None:
        future = self.handle.future
        if self.failure is None:
            try:
                future.set_result(self._result())
                return
            except BaseException as exc:  # a bug: report it rather than leave waiters waiting
                self.failure = exc
        future.set_exception(self.failure)

    def _result(self) -> RunResult:
        assert self.engine is not None
        instances = self.engine.graph.instances.values()
        return RunResult(
            run_id=self.handle.run_id,
            status=self.status,
            store_path=self.store.root,
            states={i.task_id: i.state for i in instances},
            errors={i.task_id: i.attempts.error for i in instances if i.attempts.error is not None},
            progress=self.handle.progress(),
        )


def describe_exception(exc: BaseException) -> str:
    """One-line cause plus the traceback, for the run's error column."""
    return f"{type(exc).__name__}: {exc}\n" + "".join(traceback.format_exception(exc))
