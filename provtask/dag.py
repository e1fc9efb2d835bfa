"""DAG definition: nodes recorded by task calls inside ``with DAG(...)``, on a networkx graph.

Nodes are task calls (``kind="call"``) or fan-outs (``kind="map"``) whose elements are created
at run time. Edges are ``kind="data"`` (an argument flows) or ``kind="order"`` (``a >> b``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import networkx as nx

from .context import current_dag
from .errors import DAGError, ParamError
from .refs import MapRef, ParamRef, Ref
from .templates import iter_refs, misplaced_ref

if TYPE_CHECKING:
    from .engine.handle import RunHandle, RunResult
    from .tasks import TaskDef


class DAG:
    """A named workflow of tasks with parameters.

    >>> with DAG("demo", params={"n": 3}) as dag:  # doctest: +SKIP
    ...     runs = simulate.map(make_inputs(dag.param("n")))
    """

    def __init__(
        self, name: str, params: dict[str, Any] | None = None, description: str = ""
    ) -> None:
        if not isinstance(name, str) or not name:
            raise DAGError("a DAG needs a non-empty name: DAG('my_workflow')")
        self.name = name
        self.description = description
        self.params: dict[str, Any] = dict(params or {})
        self.graph = nx.DiGraph()
        self.source_file: Path | None = None
        self._token: Any = None
        self._auto_ids: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"<DAG {self.name!r}: {self.graph.number_of_nodes()} nodes>"

    # -- definition -------------------------------------------------------------------------
    def __enter__(self) -> DAG:
        if current_dag.get() is not None:
            raise DAGError("DAG contexts cannot be nested")
        self._token = current_dag.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        current_dag.reset(self._token)
        self._token = None

    def param(self, name: str) -> ParamRef:
        """Reference to a parameter declared in ``DAG(..., params={...})``."""
        if name not in self.params:
            known = ", ".join(self.params) or "none"
            raise ParamError(f"DAG {self.name!r} has no param {name!r} (known: {known})")
        return ParamRef(name)

    def add_call(self, task: TaskDef, args: tuple, kwargs: dict) -> Ref:
        args, kwargs = task.bind_call(args, kwargs)
        node_id = self._add_node(task, "call", args=args, kwargs=kwargs)
        return Ref(self, node_id)

    def add_map(self, task: TaskDef, iterables: tuple, constants: dict) -> MapRef:
        if not iterables:
            raise DAGError(f"{task.name}.map() needs at least one iterable to fan out over")
        placeholders = tuple(None for _ in iterables)
        task.bind_arguments(placeholders, constants)  # check the call shape now
        for it in iterables:
            if not isinstance(it, Ref | ParamRef | list | tuple | range):
                raise DAGError(
                    f"{task.name}.map() fans out over lists, ranges, task outputs or params; "
                    f"got {type(it).__name__}"
                )
        iterables = tuple(list(it) if isinstance(it, range) else it for it in iterables)
        node_id = self._add_node(task, "map", args=iterables, kwargs=constants)
        return MapRef(self, node_id)

    def order(self, before: Ref, after: Ref) -> None:
        """``before >> after``: ``after`` starts only once ``before`` has succeeded."""
        for ref in (before, after):
            if not isinstance(ref, Ref):
                raise DAGError(f">> links task outputs, got {type(ref).__name__}: {ref!r}")
            if ref.dag is not self or ref.node_id not in self.graph:
                raise DAGError(f"{ref.node_id!r} is not a task of DAG {self.name!r}")
        if not self.graph.has_edge(before.node_id, after.node_id):
            self.graph.add_edge(before.node_id, after.node_id, kind="order")

    def _new_id(self, task: TaskDef) -> str:
        if task.node_id is not None:
            if task.node_id in self.graph:
                raise DAGError(f"duplicate task id {task.node_id!r} in DAG {self.name!r}")
            return task.node_id
        count = self._auto_ids.get(task.name, 0)
        node_id = task.name if count == 0 else f"{task.name}-{count}"
        while node_id in self.graph:
            count += 1
            node_id = f"{task.name}-{count}"
        self._auto_ids[task.name] = count + 1
        return node_id

    def _add_node(self, task: TaskDef, kind: str, args: tuple, kwargs: dict) -> str:
        """Check a call's arguments, then record it under a new id (returned)."""
        node_id = task.node_id or task.name  # for messages; the id is taken once all is well
        misplaced = misplaced_ref((args, kwargs))
        if misplaced is not None:
            ref, where = misplaced
            what = f"param {ref.name!r}" if isinstance(ref, ParamRef) else f"output {ref.node_id!r}"
            raise DAGError(
                f"task {node_id!r}: the {what} is used {where}, but its value is not known while "
                "the DAG is built; pass it as a dict value or in a list, and build the dict "
                "or set inside the task"
            )
        refs = list(iter_refs((args, kwargs)))
        for ref in refs:
            if isinstance(ref, Ref) and (ref.dag is not self or ref.node_id not in self.graph):
                raise DAGError(
                    f"task {node_id!r} uses {ref.node_id!r}, which is not a task of DAG "
                    f"{self.name!r}; pass outputs only between tasks of the same DAG"
                )
            if isinstance(ref, ParamRef) and ref.name not in self.params:
                raise ParamError(f"DAG {self.name!r} has no param {ref.name!r}")
        node_id = self._new_id(task)
        self.graph.add_node(node_id, task=task, kind=kind, args=args, kwargs=kwargs)
        for ref in refs:
            if isinstance(ref, Ref):
                self.graph.add_edge(ref.node_id, node_id, kind="data")
        return node_id

    # -- checks -----------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise :class:`DAGError` for cycles or an empty DAG (bad calls fail while defining)."""
        if self.graph.number_of_nodes() == 0:
            raise DAGError(f"DAG {self.name!r} has no tasks; call tasks inside 'with DAG(...)'")
        if nx.is_directed_acyclic_graph(self.graph):
            return
        cycle = nx.find_cycle(self.graph)
        path = " >> ".join([edge[0] for edge in cycle] + [cycle[0][0]])
        raise DAGError(f"DAG {self.name!r} has a cycle: {path}")

    def resolve_params(
        self, overrides: dict[str, Any] | None = None, *, from_text: bool = False
    ) -> dict[str, Any]:
        """Defaults updated by overrides; with ``from_text`` values are parsed from CLI text."""
        resolved = dict(self.params)
        for name, value in (overrides or {}).items():
            if name not in self.params:
                known = ", ".join(self.params) or "none"
                raise ParamError(f"unknown param {name!r} for DAG {self.name!r} (known: {known})")
            resolved[name] = parse_param(name, value, self.params[name]) if from_text else value
        return resolved

    # -- running ----------------------------------------------------------------------------
    def submit(self, **options: Any) -> RunHandle:
        """Start a run in the background; return its handle at once (:func:`provtask.submit`)."""
        from .engine.api import submit

        return submit(self, **options)

    def run(self, **options: Any) -> RunResult:
        """Run to completion and return the result (see :func:`provtask.run`)."""
        from .engine.api import run

        return run(self, **options)


def parse_param(name: str, text: str, default: Any) -> Any:
    """Convert ``--param name=text`` to the type of the param's default."""
    try:
        if isinstance(default, bool):
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true/false")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, str):
            return text
        return json.loads(text)
    except ValueError as exc:
        kind = type(default).__name__ if default is not None else "JSON"
        raise ParamError(f"param {name!r}: cannot read {text!r} as {kind} ({exc})") from None


__all__ = ["DAG", "MapRef", "ParamRef", "Ref", "iter_refs", "parse_param"]
