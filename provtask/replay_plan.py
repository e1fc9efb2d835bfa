"""``provtask replay``: run a recorded run's DAG again, where and as it ran.

A replay is a new run, linked to the original by ``runs.replay_of``. From the original's
recorded context (:meth:`Store.run_context`) it takes the DAG file (or its recorded source),
the params with their exact types and the clusters config, and it relies on caching for the
rest: tasks that succeeded are reused from the store; failed, upstream_failed and unfinished
tasks run again. ``tasks`` patterns recompute the matched tasks and everything downstream;
``keep`` patterns reuse recorded outputs although the tasks' code changed. ``overrides``
change the resources of the replayed tasks: the failed and unfinished ones and everything
downstream, the matched ones with ``tasks``, or all of them with ``failed_only=False``
(which recomputes nothing by itself: what is unchanged is still reused from the store).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from .dag import DAG, parse_param
from .dagfile import load_dag_file
from .errors import ConfigError, DAGFileError, NotFoundError, ResourceError
from .resources import Resources
from .runcontext import CLIENT, GIVEN_IN_PYTHON
from .states import TaskState
from .store import Store

if TYPE_CHECKING:
    from .clusters.config import ClustersConfig
    from .engine.handle import RunHandle

_INT_FIELDS = {f.name for f in dataclasses.fields(Resources) if f.type in ("int", int)}
_NOT_OK = {
    TaskState.FAILED,
    TaskState.UPSTREAM_FAILED,
    TaskState.CANCELLED,
    TaskState.PENDING,
    TaskState.RUNNING,
}
_RECORDED = re.compile(r"recorded in run \S+ \((.*)\)")


@dataclass
class ReplayPlan:
    """What a replay will run: the reloaded DAG, its params, where, and what to recompute."""

    original: str  # the run replayed
    dag: DAG
    params: dict[str, Any]
    clusters: ClustersConfig | bool | None  # False: the embedded LocalCluster
    refresh: list[str]  # patterns recomputed with everything downstream
    keep: list[str]  # patterns whose recorded outputs stand although their code changed
    record_env: list[str]  # the environment variables the original run recorded
    replayed: list[str]  # DAG nodes whose resources were overridden
    warnings: list[str]


def plan_replay(
    store: Store,
    run: str = "latest",
    tasks: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    failed_only: bool = True,
    *,
    params: dict[str, Any] | None = None,
    clusters: ClustersConfig | str | os.PathLike | bool | None = None,
    keep: list[str] | None = None,
    from_record: bool = False,
) -> ReplayPlan:
    """Load the original run's DAG and context and decide what the replay recomputes.

    ``params`` override recorded params (text, as from ``--param``, is read as the recorded
    value's type); ``clusters`` replaces the recorded clusters config (``False``: none, for
    the embedded LocalCluster or a client); ``from_record`` runs the DAG source the run
    recorded instead of the file on disk.
    """
    record = store.run(run)
    run_id = record["run_id"]
    context = _context(store, run_id)
    notes: list[str] = []
    dag = _load_dag(store, record, context, from_record, notes)
    recorded = context["params"] if context else dict(record["params"])
    resolved = dag.resolve_params({**recorded, **_read_params(params or {}, recorded)})
    if context is None:
        notes.append(f"run {run_id} recorded no context: its params are read back as JSON")
    where: ClustersConfig | bool | None
    if clusters is None:  # as recorded; before schema 9, searched for as provtask run does
        where = _recorded_clusters(context) if context is not None else None
    else:
        where = False if clusters is False else _load(clusters)
    refresh = list(tasks or [])
    if refresh:
        starts = _matching_nodes(dag, refresh)
    elif not failed_only:
        starts = set(dag.graph)
    else:
        frame = store.tasks(run_id)
        frame = frame[frame["kind"] != "map"]
        not_ok = frame[[TaskState(state) in _NOT_OK for state in frame["state"].astype(str)]]
        starts = {r.parent if r.kind == "element" else r.task_id for r in not_ok.itertuples()}
        starts = {s for s in starts if s in dag.graph}
    replayed = _with_descendants(dag, starts)
    if overrides:
        _override(dag, replayed, overrides)
    record_env = list(context["env"]) if context else []
    return ReplayPlan(
        run_id, dag, resolved, where, refresh, list(keep or []), record_env, replayed, notes
    )


def replay(
    run: str = "latest",
    *,
    store: str | os.PathLike | Store | None = None,
    tasks: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    failed_only: bool = True,
    params: dict[str, Any] | None = None,
    clusters: ClustersConfig | str | os.PathLike | None = None,
    keep: str | list[str] | None = None,
    from_record: bool = False,
    **options: Any,
) -> RunHandle:
    """Start a replay of ``run`` (see the module docstring); returns its handle at once.

    It runs where the run ran (its recorded clusters config) unless ``clusters`` is given,
    with the recorded params updated by ``params``. ``overrides`` are resources
    (``{"memory": "16GB"}``) for the replayed tasks, checked like ``task.options(...)``.
    ``keep`` patterns reuse recorded outputs although the tasks' code changed. Other
    options are those of :func:`provtask.submit` (``client``, ``n_workers``). Warns when the
    DAG file changed since the original run (``from_record=True`` runs the recorded source).
    """
    opened = store if isinstance(store, Store) else Store(store, create=False)
    patterns = [keep] if isinstance(keep, str) else keep
    plan = plan_replay(
        opened,
        run,
        tasks,
        overrides,
        failed_only,
        params=params,
        clusters=False if options.get("client") is not None else clusters,
        keep=patterns,
        from_record=from_record,
    )
    for warning in plan.warnings:
        warnings.warn(warning, stacklevel=2)
    return submit_plan(plan, opened, **options)


def submit_plan(plan: ReplayPlan, store: Store, **options: Any) -> RunHandle:
    """Start the run a plan describes; ``options`` as :func:`provtask.submit`."""
    from .engine.api import submit

    record_env = [*plan.record_env, *(options.pop("record_env", None) or ())]
    return submit(
        plan.dag,
        params=plan.params,
        store=store,
        clusters=plan.clusters,
        refresh=plan.refresh,
        keep=plan.keep,
        replay_of=plan.original,
        record_env=record_env,
        **options,
    )


def _recorded_clusters(context: dict[str, Any]) -> ClustersConfig | bool:
    """The clusters config a run recorded (``False``: it ran on the embedded LocalCluster)."""
    from .clusters.config import parse_clusters

    origin = context["clusters_origin"]
    if origin == CLIENT:
        raise ConfigError(
            f"run {context['run_id']} ran on a distributed.Client given in Python; replay it "
            "from Python with provtask.replay(RUN, client=...), or give --clusters FILE"
        )
    if context["clusters_config"] is None:
        return False
    import yaml

    match = _RECORDED.fullmatch(origin)
    path = match.group(1) if match else origin  # a replay's replay: the file of the first
    source = None if path == GIVEN_IN_PYTHON else Path(path)
    config = parse_clusters(yaml.safe_load(context["clusters_config"]), source=source)
    first = f"recorded in run {context['run_id']} ({path})"
    return dataclasses.replace(config, text=context["clusters_config"], origin=first)


def _context(store: Store, run_id: str) -> dict[str, Any] | None:
    try:
        return store.run_context(run_id)
    except NotFoundError:
        return None  # a run from before schema 9


def _load_dag(
    store: Store,
    record: dict[str, Any],
    context: dict[str, Any] | None,
    from_record: bool,
    notes: list[str],
) -> DAG:
    """The DAG file as the run recorded it: the file on disk (warning if it changed since),
    or with ``from_record`` the recorded source, written under the store's ``sources/``."""
    run_id, dag_file = record["run_id"], record["dag_file"]
    if not dag_file:
        raise DAGFileError(
            f"run {run_id} recorded no DAG file (it was started from Python, not from a file); "
            "run the same script again instead: finished tasks come from the cache"
        )
    recorded_source = context["dag_source"] if context else None
    if from_record:
        if recorded_source is None:
            raise DAGFileError(
                f"run {run_id} recorded no DAG source (a provtask older than schema 9 ran "
                "it); replay it without --from-record"
            )
        folder = store.root / "sources" / context["dag_hash"][:16]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / Path(dag_file).name
        path.write_text(recorded_source)
        return load_dag_file(path, record["dag_name"])
    path = Path(dag_file)
    offer = " or run the recorded source with --from-record" if recorded_source else ""
    if not path.is_file():
        raise DAGFileError(
            f"the DAG file of run {run_id}, {dag_file}, no longer exists; restore it{offer}, "
            "or run the DAG again with provtask run"
        )
    if hashlib.sha256(path.read_bytes()).hexdigest() != record["dag_file_hash"]:
        notes.append(
            f"the DAG file {dag_file} has changed since run {run_id}: the replay runs the "
            "current code, and tasks whose code changed are recomputed (keep their outputs "
            f"with --keep TASK{offer})"
        )
    return load_dag_file(path, record["dag_name"])


def _read_params(given: dict[str, Any], recorded: dict[str, Any]) -> dict[str, Any]:
    """Param overrides; text (from ``--param``) is read as the recorded value's type."""
    read = {}
    for name, value in given.items():
        if not isinstance(value, str) or name not in recorded:
            read[name] = value  # unknown names are refused by resolve_params
            continue
        before = recorded[name]
        if isinstance(before, PurePath):
            read[name] = type(before)(value)
        elif isinstance(before, tuple | set | frozenset):
            read[name] = type(before)(parse_param(name, value, []))
        else:
            read[name] = parse_param(name, value, before)
    return read


def _load(clusters: ClustersConfig | str | os.PathLike) -> ClustersConfig | bool:
    from .clusters.config import ClustersConfig, load_clusters

    if isinstance(clusters, ClustersConfig):
        return clusters
    return load_clusters(Path(clusters)) or False


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["memory=16GB", "retries=2"]`` as resource fields (integers where the field is one)."""
    overrides: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name or not text.strip():
            raise ResourceError(f"--set expects FIELD=VALUE (e.g. memory=16GB), got {item!r}")
        text = text.strip()
        if name in _INT_FIELDS:
            if not text.isdigit():
                raise ResourceError(f"{name}: expected an integer, got {text!r}")
            overrides[name] = int(text)
        else:
            overrides[name] = text
    return overrides


def _matching_nodes(dag: DAG, patterns: list[str]) -> set[str]:
    """DAG nodes whose id or task name matches a pattern (an element id counts for its map)."""
    found = set()
    for node_id, data in dag.graph.nodes(data=True):
        names = (node_id, data["task"].name)
        for pattern in patterns:
            base = pattern.split("[", 1)[0] if pattern.endswith("]") else pattern
            if any(n in (pattern, base) or fnmatch.fnmatchcase(n, pattern) for n in names):
                found.add(node_id)
    return found


def _with_descendants(dag: DAG, nodes: set[str]) -> list[str]:
    import networkx as nx

    everything = set(nodes)
    for node in nodes:
        everything |= nx.descendants(dag.graph, node)
    return [n for n in dag.graph if n in everything]


def _override(dag: DAG, nodes: list[str], overrides: dict[str, Any]) -> None:
    """Give the replayed nodes new resources (checked like ``task.options(...)``)."""
    for node in nodes:
        data = dag.graph.nodes[node]
        data["task"] = data["task"].options(**overrides)
