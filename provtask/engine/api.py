"""Starting runs: validation, the run's thread, its store writer and its pools."""

from __future__ import annotations

import atexit
import contextlib
import getpass
import hashlib
import os
import platform
import secrets
import socket
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle

from ..dag import DAG, ParamRef, Ref, iter_refs
from ..errors import DAGError, RunInterrupted
from ..mpi.check import check_mpi_task
from ..runcontext import RunContext, collect_context
from ..states import RunStatus
from ..store import Store
from .cache import CachePolicy, check_cacheable
from .handle import RunHandle, RunResult
from .heap import frozen_heap
from .pools import Pool, Pools, local_pool
from .progress_bar import show_progress
from .recorder import RunRecorder
from .runner import Engine, describe_exception

if TYPE_CHECKING:
    from ..clusters.config import ClustersConfig

_ACTIVE: weakref.WeakSet[RunHandle] = weakref.WeakSet()
EXIT_GRACE = 10.0  # s given to runs to record their interruption when Python exits


def new_run_id() -> str:
    """Sortable and readable, in UTC: ``20261125-143002-a1b2c3``."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def check_runnable(dag: DAG, clusters: ClustersConfig | None = None) -> None:
    """What can be known before anything runs: structure, MPI support, picklable constants,
    and that every task fits its partition."""
    dag.validate()
    for node_id, data in dag.graph.nodes(data=True):
        task = data["task"]
        partition = None
        if clusters is not None:
            partition = clusters.partition_for(task.resources.partition, node_id)
            partition.check_fits(node_id, task.resources)
            for cause, changes in task.escalation.by_cause:  # partitions a retry may move to
                for change in changes:
                    if change.field == "partition":
                        clusters.partition_for(change.amount, f"{node_id} (on {cause})")
        if task.kind == "mpi":
            check_mpi_task(node_id, task, partition)
        arguments = {**dict(enumerate(data["args"])), **data["kwargs"]}
        for name, value in arguments.items():
            _check_picklable(node_id, name, value)
    check_cacheable(dag)


_ALWAYS_PICKLABLE = (type(None), bool, int, float, complex, str, bytes)


def _check_picklable(node_id: str, name: Any, value: Any) -> None:
    if type(value) in _ALWAYS_PICKLABLE:  # most arguments: nothing to try
        return
    if any(True for _ in iter_refs(value)):
        if isinstance(value, Ref | ParamRef):
            return
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            _check_picklable(node_id, f"{name}[{key!r}]", item)
        return
    try:
        cloudpickle.dumps(value)
    except Exception as exc:
        label = f"argument {name}" if isinstance(name, int) else f"argument {name!r}"
        raise DAGError(
            f"task {node_id!r}: {label} cannot be sent to a worker ({type(exc).__name__}: "
            f"{exc}); pass something picklable (a path, numbers, a dict) and create the object "
            "inside the task"
        ) from None


def submit(
    dag: DAG,
    *,
    params: dict[str, Any] | None = None,
    store: str | os.PathLike | Store | None = None,
    client: Any = None,
    n_workers: int | None = None,
    clusters: ClustersConfig | str | os.PathLike | None = None,
    cache: bool = True,
    refresh: str | list[str] | None = None,
    replay_of: str | None = None,
    record_env: list[str] | None = None,
) -> RunHandle:
    """Validate ``dag`` and start running it in a background thread; returns at once.

    Where tasks run, in order of precedence:

    - ``client``: an existing ``distributed.Client`` runs every task;
    - ``clusters``: a clusters file (or its loaded :class:`ClustersConfig`) gives one cluster
      per partition; when omitted, the file is searched for as ``provtask clusters`` shows
      (``$PROVTASK_CLUSTERS``, ``./clusters.yaml``, ``~/.config/provtask/clusters.yaml``);
    - otherwise an embedded ``LocalCluster`` with ``n_workers`` single-threaded processes
      (one per core), closed with the run.

    Provenance goes to ``store`` (default ``$PROVTASK_STORE`` or ``./store``).

    Caching (docs/caching.md): a task whose key has an intact output in the store is
    ``cached`` and does not run. ``cache=False`` looks nothing up; ``refresh`` (task names,
    ids or patterns such as ``"simulate*"``) recomputes the matching tasks and everything
    downstream of them. ``replay_of`` records the run this one replays (see
    :func:`provtask.replay`).

    The run's context is recorded (:meth:`Store.run_context`), with the environment variables
    named by ``record_env`` and by ``record-env`` in the clusters file.
    """
    policy = CachePolicy.make(cache, refresh)
    config = None if client is not None else _clusters_config(clusters)
    check_runnable(dag, config)
    resolved = dag.resolve_params(params)
    context = collect_context(
        dag, resolved, config, client_given=client is not None, record_env=record_env or ()
    )
    opened = store if isinstance(store, Store) else Store(store)
    handle = RunHandle(new_run_id(), opened.root)
    run_row = {**_run_row(dag, resolved), "replay_of": replay_of}
    thread = threading.Thread(
        target=_execute,
        args=(handle, dag, resolved, opened, run_row, client, n_workers, config, policy, context),
        name=f"provtask-run-{handle.run_id}",
        daemon=True,
    )
    _ACTIVE.add(handle)
    thread.start()
    return handle


def run(dag: DAG, *, progress: bool = False, **options: Any) -> RunResult:
    """Run ``dag`` to the end and return its :class:`RunResult` (options as :func:`submit`).

    ``progress=True`` draws a progress bar (in a terminal or a Jupyter cell). Ctrl-C
    cancels the run, records it as interrupted, and raises :class:`RunInterrupted`.
    """
    handle = submit(dag, **options)
    try:
        if progress:
            show_progress(handle)
        while not handle.wait(timeout=0.25):
            pass
    except KeyboardInterrupt:
        handle.cancel("interrupted (Ctrl-C)")
        handle.wait(timeout=60)
        raise RunInterrupted(f"run {handle.run_id} interrupted") from None
    return handle.result()


def _execute(*arguments: Any) -> None:
    """The run's thread (see :func:`_run_engine`), with the garbage collector kept from
    pausing it over objects older than the run."""
    with frozen_heap():
        _run_engine(*arguments)


def _run_engine(
    handle: RunHandle,
    dag: DAG,
    params: dict[str, Any],
    store: Store,
    run_row: dict[str, Any],
    client: Any,
    n_workers: int | None,
    config: ClustersConfig | None,
    policy: CachePolicy,
    context: RunContext,
) -> None:
    writer = store.writer()
    recorder = RunRecorder(writer, handle.run_id)
    recorder.start_run(run_row)
    context.record(writer, handle.run_id)
    status, error, failure = RunStatus.FAILED, None, None
    pools: Pools | None = None
    engine: Engine | None = None
    try:
        if client is not None:
            pools = Pools(Pool("client", client))
        elif config is not None:
            pools = Pools(config=config)
        else:
            pools = Pools(local_pool(n_workers))
        writer.update("runs", {"run_id": handle.run_id}, {"cluster": _describe(pools, config)})
        engine = Engine(
            handle.run_id,
            dag,
            params,
            pools,
            recorder,
            handle.inbox,
            handle.publish,
            str(store.root),
            policy,
        )
        status = engine.run()
        if status is RunStatus.INTERRUPTED:
            error = engine.cancel_reason
    except BaseException as exc:
        status, error, failure = RunStatus.FAILED, describe_exception(exc), exc
        if engine is not None:
            with contextlib.suppress(BaseException):  # the original error is the one to report
                engine.abort(f"the engine failed: {exc}")
    finally:
        try:
            if engine is not None:
                engine.close()
            n_tasks = engine.n_tasks if engine else 0
            recorder.finish_run(status, n_tasks, error)
            writer.close()
        except BaseException as exc:
            failure = failure or exc
            # The store failed (disk full…): one small update often still fits.
            writer.salvage(
                "runs",
                {"run_id": handle.run_id},
                {"status": RunStatus.FAILED.value, "ended_at": time.time(), "error": str(failure)},
            )
        finally:
            if pools is not None:
                pools.close()
            _ACTIVE.discard(handle)
    if failure is not None:
        handle.future.set_exception(failure)
        return
    assert engine is not None
    handle.future.set_result(
        RunResult(
            run_id=handle.run_id,
            status=status,
            store_path=store.root,
            states={i.task_id: i.state for i in engine.graph.instances.values()},
            errors={
                i.task_id: i.error for i in engine.graph.instances.values() if i.error is not None
            },
            progress=handle.progress(),
        )
    )


def _clusters_config(
    clusters: ClustersConfig | str | os.PathLike | None,
) -> ClustersConfig | None:
    from ..clusters.config import ClustersConfig, load_clusters

    if isinstance(clusters, ClustersConfig):
        return clusters
    return load_clusters(Path(clusters) if clusters is not None else None)


def _describe(pools: Pools, config: ClustersConfig | None) -> str:
    """The run's ``cluster`` column: the pools, or the clusters file that will create them."""
    if config is None:
        return "; ".join(p.describe() for p in pools.all())
    names = ", ".join(f"{p.name} ({p.scheduler})" for p in config.partitions.values())
    return f"clusters file {config.source or '(given in Python)'}: {names}"


def _run_row(dag: DAG, params: dict[str, Any]) -> dict[str, Any]:
    import dask
    import distributed

    from .. import __version__

    source = dag.source_file
    return {
        "dag_name": dag.name,
        "dag_file": str(source) if source else None,
        "dag_file_hash": hashlib.sha256(source.read_bytes()).hexdigest() if source else None,
        "params": params,
        "user": getpass.getuser(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "provtask_version": __version__,
        "python_version": platform.python_version(),
        "dask_version": dask.__version__,
        "distributed_version": distributed.__version__,
        "started_at": time.time(),
    }


@atexit.register
def _interrupt_active_runs() -> None:
    """A script that exits while runs go on records them as interrupted, not running."""
    for handle in list(_ACTIVE):
        handle.cancel("the Python process exited")
    for handle in list(_ACTIVE):
        handle.wait(EXIT_GRACE)


__all__ = ["check_runnable", "new_run_id", "run", "submit"]
