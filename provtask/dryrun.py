"""``provtask run --dry-run``: what a run would do, without running anything.

Calls whose inputs are known before the run (params, constants, outputs of tasks found in
the cache) are looked up in the store by their cache key, as the engine would; a map's
elements exist only once its input list does, so they are counted when that list is known
and looked up at run time otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .dag import Ref

if TYPE_CHECKING:
    from .clusters.config import ClustersConfig
    from .dag import DAG
    from .store import Store


@dataclass(frozen=True)
class Planned:
    """One node of the DAG and what the run would do with it."""

    task_id: str
    kind: str
    partition: str
    action: str  # "cached", "run", or "run (…why…)"
    detail: str


def plan(dag: DAG, params: dict[str, Any], store: Store | None, config: ClustersConfig | None):
    """The DAG's nodes in topological order, each with what the run would do."""
    from .engine.cache import cache_key
    from .engine.rungraph import RunGraph
    from .store.cache_lookup import find_sources

    graph = RunGraph(dag, params)
    planned = []
    for inst in graph.instances.values():  # built in topological order
        task = inst.task
        partition = _partition(task, config, inst.task_id)
        upstream = [graph.instances[u] for u in dag.graph.predecessors(inst.task_id)]
        unknown = [u.task_id for u in upstream if u.output_hash is None]
        if inst.kind == "map":
            count = _length(inst.node.args, params, graph.instances)
            known = f"{count} elements" if count is not None else "elements known at run time"
            action, detail = "run", f"{known}, each looked up in the cache when it exists"
        elif unknown:
            action, detail = "run", f"its input {unknown[0]} is computed in this run"
        elif task.cache.enabled is False:
            action, detail = "run", "cache=False on the task"
        else:
            inst.caching.inputs, inst.caching.input_hash = graph.describe_inputs(inst)
            if inst.caching.input_hash is None or task.cache.key is not None:
                action, detail = "run", "its cache key is known only at run time"
            else:
                key = cache_key(task.code_hash, inst.caching.input_hash, task.cache.version)
                source = find_sources(store.conn, [key]).get(key) if store else None
                if source is None:
                    action, detail = "run", "no stored output with its cache key"
                else:
                    inst.output_hash, inst.n_items = source.output_hash, source.n_items
                    action, detail = "cached", f"from run {source.run_id} {source.task_id}"
        planned.append(Planned(inst.task_id, inst.kind, partition, action, detail))
    return planned


def _partition(task: Any, config: ClustersConfig | None, label: str) -> str:
    if config is None:
        return "local"
    return config.partition_for(task.resources.partition, label).name


def _length(iterables: tuple, params: dict[str, Any], instances: dict[str, Any]) -> int | None:
    """A map's element count, if known before the run: a literal list, a param, or the
    output of a task found in the cache."""
    from .dag import MapRef, ParamRef

    for iterable in iterables:
        if isinstance(iterable, ParamRef):
            value = params[iterable.name]
            return len(value) if isinstance(value, list | tuple) else None
        if isinstance(iterable, MapRef):
            return None
        if isinstance(iterable, Ref):
            return instances[iterable.node_id].n_items
        return len(iterable)
    return None
