"""Starting runs: validation, the run's thread, its store writer and its pools."""

from __future__ import annotations

import atexit
import contextlib
import getpass
import hashlib
import os
import platform
import secrets
import signal
import socket
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..checks import check_runnable
from ..clusters.factory import client_pool, local_pool
from ..errors import RunInterrupted
from ..runcontext import RunContext, collect_context
from ..script_mode import check_script_mode
from ..store import Store
from .cache import CachePolicy
from .handle import RunHandle, RunResult
from .lifecycle import RunLifecycle
from .pools import Pools
from .progress_bar import show_progress
from .recorder import RunRecorder
from .runner import Engine

if TYPE_CHECKING:
    from ..clusters.config import ClustersConfig
    from ..dag import DAG

_ACTIVE: weakref.WeakSet[RunHandle] = weakref.WeakSet()
EXIT_GRACE = 10.0  # s given to runs to record their interruption when Python exits


def new_run_id() -> str:
    """Sortable and readable, in UTC: ``20261125-143002-a1b2c3``."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def submit(
    dag: DAG,
    *,
    params: dict[str, Any] | None = None,
    store: str | os.PathLike | Store | None = None,
    client: Any = None,
    n_workers: int | None = None,
    clusters: ClustersConfig | str | os.PathLike | bool | None = None,
    cache: bool = True,
    refresh: str | list[str] | None = None,
    keep: str | list[str] | None = None,
    replay_of: str | None = None,
    record_env: list[str] | None = None,
) -> RunHandle:
    """Validate ``dag`` and start running it in a background thread; returns at once.

    Where tasks run, in order of precedence:

    - ``client``: an existing ``distributed.Client`` runs every task;
    - ``clusters``: a clusters file (or its loaded :class:`ClustersConfig`) gives one cluster
      per partition; when omitted, the file is searched for as ``provtask clusters`` shows
      (``$PROVTASK_CLUSTERS``, ``./clusters.yaml``, ``~/.config/provtask/clusters.yaml``);
      ``clusters=False`` searches for none;
    - otherwise an embedded ``LocalCluster`` with ``n_workers`` single-threaded processes
      (one per core), closed with the run.

    Provenance goes to ``store`` (default ``$PROVTASK_STORE`` or ``./store``).

    Caching (docs/caching.md): a task whose key has an intact output in the store is
    ``cached`` and does not run. ``cache=False`` looks nothing up; ``refresh`` (task names,
    ids or patterns such as ``"simulate*"``) recomputes the matching tasks and everything
    downstream of them. ``keep`` (patterns too) reuses the recorded outputs of the matching
    tasks although their code changed, when their inputs are the same. ``replay_of``
    records the run this one replays (see :func:`provtask.replay`).

    The run's context is recorded (:meth:`Store.run_context`), with the environment variables
    named by ``record_env`` and by ``record-env`` in the clusters file.
    """
    policy = CachePolicy.make(cache, refresh, keep)
    config = None if client is not None else _clusters_config(clusters)
    check_runnable(dag, config)
    if client is None and config is None:  # the embedded cluster spawns worker processes
        check_script_mode()
    resolved = dag.resolve_params(params)
    context = collect_context(
        dag,
        resolved,
        config,
        client_given=client is not None,
        record_env=record_env or (),
        keep=policy.keep,
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

    ``progress=True`` draws a progress bar (in a terminal or a Jupyter cell). Ctrl-C, or
    SIGTERM when the process has no handler of its own for it, cancels the run (its batch
    jobs too), records it as interrupted, and raises :class:`RunInterrupted`.
    """
    handle = submit(dag, **options)
    try:
        with _sigterm_interrupts():
            if progress:
                show_progress(handle)
            while not handle.wait(timeout=0.25):
                pass
    except KeyboardInterrupt:
        handle.cancel("interrupted (Ctrl-C or SIGTERM)")
        handle.wait(timeout=60)
        raise RunInterrupted(f"run {handle.run_id} interrupted") from None
    return handle.result()


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """In the main thread, SIGTERM (what ``kill`` and SLURM send) acts as Ctrl-C, unless the
    program handles it itself."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _execute(
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
    """The run's thread: a :class:`RunLifecycle` around the engine."""

    def open_pools() -> Pools:
        if client is not None:
            return Pools(client_pool(client))
        if config is not None:
            return Pools(config=config)
        return Pools(local_pool(n_workers))

    def make_engine(recorder: RunRecorder, pools: Pools) -> Engine:
        recorder.writer.update(
            "runs", {"run_id": handle.run_id}, {"cluster": _describe(pools, config)}
        )
        return Engine(
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

    try:
        RunLifecycle(handle, store).execute(run_row, open_pools, make_engine, context)
    finally:
        _ACTIVE.discard(handle)


def _clusters_config(
    clusters: ClustersConfig | str | os.PathLike | None,
) -> ClustersConfig | None:
    from ..clusters.config import ClustersConfig, load_clusters

    if clusters is False:
        return None
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

    from ..version import __version__

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
