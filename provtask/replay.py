"""``provtask replay``: run a recorded run's DAG again, reusing what finished.

A replay is a new run, linked to the original by ``runs.replay_of``. It loads the DAG file
the original run recorded, with the same params, and relies on caching for the rest: tasks
that succeeded are reused from the store; failed, upstream_failed and unfinished tasks run
again. ``tasks`` patterns (or ``failed_only=False``) recompute the matched tasks (all tasks)
and everything downstream. ``overrides`` change the resources of the replayed tasks.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import networkx as nx

from .dag import DAG
from .dagfile import load_dag_file
from .errors import DAGFileError, ResourceError
from .resources import Resources
from .store import Store

if TYPE_CHECKING:
    from .engine.handle import RunHandle

_INT_FIELDS = {f.name for f in dataclasses.fields(Resources) if f.type in ("int", int)}
_NOT_OK = ("failed", "upstream_failed", "cancelled", "pending", "running")


@dataclass
class ReplayPlan:
    """What a replay will run: the reloaded DAG, its params and what to recompute."""

    original: str  # the run replayed
    dag: DAG
    params: dict[str, Any]
    refresh: list[str]  # patterns recomputed with everything downstream
    replayed: list[str]  # DAG nodes whose resources were overridden
    warning: str | None  # set when the DAG file changed since the original run


def plan_replay(
    store: Store,
    run: str,
    tasks: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    failed_only: bool = True,
) -> ReplayPlan:
    """Load the original run's DAG file and decide what the replay recomputes."""
    record = store.run(run)
    dag_file = record["dag_file"]
    if not dag_file:
        raise DAGFileError(
            f"run {record['run_id']} recorded no DAG file (it was started from Python, not "
            "from a file); run the same script again instead: finished tasks come from the cache"
        )
    path = Path(dag_file)
    if not path.is_file():
        raise DAGFileError(
            f"the DAG file of run {record['run_id']}, {dag_file}, no longer exists; restore it "
            "or run the DAG again with provtask run"
        )
    warning = None
    if hashlib.sha256(path.read_bytes()).hexdigest() != record["dag_file_hash"]:
        warning = (
            f"the DAG file {dag_file} has changed since run {record['run_id']}: the replay "
            "runs the current code, and tasks whose code changed are recomputed"
        )
    dag = load_dag_file(path, record["dag_name"])
    params = dag.resolve_params(record["params"])
    patterns = list(tasks or [])
    refresh = patterns if patterns or failed_only else ["*"]
    if patterns or not failed_only:
        starts = _matching_nodes(dag, refresh)
    else:
        states = store.tasks(record["run_id"])
        not_ok = states[states["state"].astype(str).isin(_NOT_OK) & (states["kind"] != "map")]
        starts = {
            row.parent if row.kind == "element" else row.task_id for row in not_ok.itertuples()
        }
        starts &= set(dag.graph)
    replayed = _with_descendants(dag, starts)
    if overrides:
        _override(dag, replayed, overrides)
    return ReplayPlan(record["run_id"], dag, params, refresh, replayed, warning)


def replay(
    run: str,
    *,
    store: str | os.PathLike | Store | None = None,
    tasks: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    failed_only: bool = True,
    **options: Any,
) -> RunHandle:
    """Start a replay of ``run`` (see the module docstring); returns its handle at once.

    ``overrides`` are resources (``{"memory": "16GB", "walltime": "4h"}``) for the replayed
    tasks, validated like ``task.options(...)``. Other options are those of
    :func:`provtask.submit` (``client``, ``n_workers``, ``clusters``). Warns when the DAG
    file changed since the original run.
    """
    from .engine.api import submit

    opened = store if isinstance(store, Store) else Store(store, create=False)
    plan = plan_replay(opened, run, tasks, overrides, failed_only)
    if plan.warning:
        warnings.warn(plan.warning, stacklevel=2)
    return submit(
        plan.dag,
        params=plan.params,
        store=opened,
        refresh=plan.refresh,
        replay_of=plan.original,
        **options,
    )


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
    everything = set(nodes)
    for node in nodes:
        everything |= nx.descendants(dag.graph, node)
    return [n for n in dag.graph if n in everything]


def _override(dag: DAG, nodes: list[str], overrides: dict[str, Any]) -> None:
    """Give the replayed nodes new resources (checked like ``task.options(...)``)."""
    for node in nodes:
        data = dag.graph.nodes[node]
        data["task"] = data["task"].options(**overrides)
