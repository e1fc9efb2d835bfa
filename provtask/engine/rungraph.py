"""The run-time graph: one :class:`Instance` per task to execute, with dependency counting.

Built from a DAG's networkx graph; ``.map`` nodes grow element instances (``name[i]``) when
their inputs are known. Pure bookkeeping, no Dask: the engine asks what is ready, reports
outcomes, and reads back which instances changed state. It owns the task states and their
counts; nobody else keeps a copy.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import networkx as nx

from ..hashing import PathMemo, combine
from ..partial import runs_on_partial
from ..refs import MapRef, ParamRef, Ref
from ..states import TaskState
from ..tasks import TaskDef
from .inputs import Inputs
from .instance import Instance, Kind, Node

if TYPE_CHECKING:
    from ..dag import DAG

_MAP_INCOMPLETE = "an element of this map did not succeed"


class RunGraph:
    """Instances of a run and the transitions between their states."""

    def __init__(self, dag: DAG, params: dict[str, Any], memo: PathMemo | None = None) -> None:
        self.dag = dag
        self.params = params
        self.memo = memo  # digests of files passed as Path arguments
        self.instances: dict[str, Instance] = {}
        self.ready: deque[Instance] = deque()
        self.changed: list[Instance] = []
        self.new_edges: list[tuple[str, str, str]] = []
        self.released: list[Any] = []  # futures no task will read again, to be let go
        self.counts: Counter[TaskState] = Counter()  # of tasks that run (not map nodes)
        self.unfinished = 0  # instances, map nodes included
        self.holds: Counter[str] = Counter()  # unfinished data consumers per DAG node
        self.inputs = Inputs(self)
        graph = dag.graph
        for node_id in _topological(dag):
            data = graph.nodes[node_id]
            self._add(node_id, data["task"], data["kind"], data["args"], data["kwargs"])
        for node_id, inst in self.instances.items():
            elementwise = {
                it.node_id for it in inst.node.args if inst.kind == "map" and isinstance(it, MapRef)
            }
            for pred in graph.predecessors(node_id):
                source = self.instances[pred]
                if pred in elementwise:
                    source.on_expand.append(inst)
                else:
                    source.on_success.append(inst)
                inst.waiting += 1
        for inst in self.instances.values():
            if inst.waiting == 0:
                self.ready.append(inst)
        # At zero consumers left, a node's futures are dropped.
        self.holds.update(u for u, _, kind in graph.edges(data="kind") if kind == "data")

    def _add(self, task_id: str, task: TaskDef, kind: Kind, args: tuple, kwargs: dict, **extra):
        inst = Instance(Node(len(self.instances), task_id, task, kind, args, kwargs, **extra))
        self.instances[task_id] = inst
        self.unfinished += 1
        if inst.counted:
            self.counts[inst.state] += 1
        return inst

    # -- transitions ------------------------------------------------------------------------
    def set_state(self, inst: Instance, state: TaskState, error: str | None = None) -> None:
        """The one place states change: counts follow, and a task that finishes lets go of
        the data nobody needs any more."""
        previous, inst.state = inst.state, state
        if error is not None:
            inst.attempts.error = error
        self.changed.append(inst)
        if previous is state:
            return
        if inst.counted:
            self.counts[previous] -= 1
            self.counts[state] += 1
        if state.finished and not previous.finished:
            self.unfinished -= 1
            self.release_data(inst)

    def _satisfy(self, inst: Instance) -> None:
        inst.waiting -= 1
        if inst.waiting == 0 and inst.state is TaskState.PENDING:
            self.ready.append(inst)

    def succeed(self, inst: Instance, state: TaskState = TaskState.SUCCESS) -> None:
        """The instance produced its output (``CACHED``: reused it): release what waits on it."""
        finished = [inst]
        while finished:
            done = finished.pop()
            self.set_state(done, state if done is inst else TaskState.SUCCESS)
            for dependent in done.on_success:
                self._satisfy(dependent)
            parent = done.node.parent
            if parent is not None and parent.state is TaskState.RUNNING:
                outcome = self._child_finished(parent)
                if outcome is TaskState.SUCCESS:
                    finished.append(parent)
                elif outcome is not None:
                    self.fail(parent, outcome, _MAP_INCOMPLETE)

    def fail(self, inst: Instance, state: TaskState, error: str | None = None) -> None:
        """The instance will never produce output; everything downstream is upstream_failed."""
        work = [(inst, state, error)]
        while work:
            current, current_state, current_error = work.pop()
            self.set_state(current, current_state, current_error)
            partial = {id(d) for d in current.on_success if runs_on_partial(d, current)}
            for dependent in current.on_success + current.on_expand:
                if id(dependent) in partial:
                    self._satisfy(dependent)
                elif dependent.state is TaskState.PENDING:
                    work.append(
                        (dependent, TaskState.UPSTREAM_FAILED, f"upstream {current.task_id} failed")
                    )
            parent = current.node.parent
            if parent is not None and parent.state is TaskState.RUNNING:
                outcome = self._child_finished(parent)
                if outcome is not None:
                    work.append((parent, outcome, _MAP_INCOMPLETE))

    @staticmethod
    def _child_finished(parent: Instance) -> TaskState | None:
        """A map's state once its last element has finished (None while some still run)."""
        parent.unfinished_children -= 1
        if parent.unfinished_children:
            return None
        if all(child.state.ok for child in parent.children):
            parent.output_hash = combine([child.output_hash for child in parent.children])
            return TaskState.SUCCESS
        if any(child.state is TaskState.FAILED for child in parent.children):
            return TaskState.FAILED
        return TaskState.UPSTREAM_FAILED

    def release_data(self, inst: Instance) -> None:
        """Called once per instance as it finishes (by ``set_state``): drop the futures nobody
        will read again, so workers can free the values (they are safe in the store)."""
        if inst.kind == "element":
            if self.holds[inst.node.parent.task_id] == 0:
                self._drop_futures(inst)
            return
        if self.holds[inst.task_id] == 0:
            self._drop_futures(inst)
        for source, edge in self.dag.graph.pred[inst.task_id].items():
            if edge["kind"] == "data":
                self.holds[source] -= 1
                if self.holds[source] == 0 and self.instances[source].state.finished:
                    self._drop_futures(self.instances[source])

    def _drop_futures(self, inst: Instance) -> None:
        for holder in (inst, *inst.children):
            if holder.attempts.future is not None:
                self.released.append(holder.attempts.future)
                holder.attempts.future = None
            self.released.extend(holder.caching.loaders.values())
            holder.caching.loaders.clear()

    def cancel_unfinished(self) -> list[Instance]:
        """Mark every unfinished instance cancelled (the run was interrupted)."""
        cancelled = [i for i in self.instances.values() if not i.state.finished]
        for inst in cancelled:
            self.set_state(inst, TaskState.CANCELLED)
        return cancelled

    def expand(self, map_inst: Instance) -> list[Instance]:
        """Create the elements of a ready map node; returns them (empty if the map failed)."""
        lengths = []
        for position, iterable in enumerate(map_inst.node.args):
            length = self._length(iterable)
            if length is None:
                source = iterable.node_id if isinstance(iterable, Ref) else f"argument {position}"
                self.fail(
                    map_inst,
                    TaskState.FAILED,
                    f"{map_inst.task.name}.map() cannot fan out over the output of {source}: "
                    "it is not a list or tuple",
                )
                return []
            lengths.append(length)
        if len(set(lengths)) > 1:
            self.fail(
                map_inst,
                TaskState.FAILED,
                f"{map_inst.task.name}.map() iterables have different lengths {lengths}",
            )
            return []
        count = lengths[0]
        self.set_state(map_inst, TaskState.RUNNING)
        map_inst.unfinished_children = count
        for index in range(count):
            self._element(map_inst, index)
        for dependent in map_inst.on_expand:
            self._satisfy(dependent)
        if count == 0:
            map_inst.output_hash = combine([])
            self.succeed(map_inst)
        return map_inst.children

    def _length(self, iterable: Any) -> int | None:
        if isinstance(iterable, MapRef):
            return len(self.instances[iterable.node_id].children)
        if isinstance(iterable, Ref):
            return self.instances[iterable.node_id].n_items
        if isinstance(iterable, ParamRef):
            value = self.params[iterable.name]
            return len(value) if isinstance(value, list | tuple) else None
        return len(iterable)

    def _element(self, map_inst: Instance, index: int) -> Instance:
        args: list[Any] = []
        picks: list[tuple[int, int]] = []
        waits_on: list[Instance] = []
        for position, iterable in enumerate(map_inst.node.args):
            if isinstance(iterable, MapRef):
                source = self.instances[iterable.node_id].children[index]
                args.append(Ref(self.dag, source.task_id))
                waits_on.append(source)
            elif isinstance(iterable, Ref):
                args.append(iterable)
                picks.append((position, index))
            elif isinstance(iterable, ParamRef):
                args.append(self.params[iterable.name][index])
            else:
                args.append(iterable[index])
        element = self._add(
            f"{map_inst.task_id}[{index}]",
            map_inst.task,
            "element",
            tuple(args),
            map_inst.node.kwargs,
            parent=map_inst,
            picks=tuple(picks),
        )
        map_inst.children.append(element)
        for source in {id(s): s for s in waits_on}.values():
            self.new_edges.append((source.task_id, element.task_id, "data"))
            if source.state.ok:
                continue
            if source.state.finished:
                self.fail(element, TaskState.UPSTREAM_FAILED, f"upstream {source.task_id} failed")
                return element
            source.on_success.append(element)
            element.waiting += 1
        args_of_map = map_inst.node.args
        whole = [a for a in args_of_map if isinstance(a, Ref) and not isinstance(a, MapRef)]
        for source_id in dict.fromkeys(a.node_id for a in whole):
            self.new_edges.append((source_id, element.task_id, "data"))
        if element.waiting == 0:
            self.ready.append(element)
        return element

    # -- arguments and their identities (see .inputs) --------------------------------------
    def resolve(self, template: Any, load: Callable[[Instance], Any] | None = None) -> Any:
        return self.inputs.resolve(template, load)

    def arguments(self, inst: Instance) -> dict[str, Any]:
        return self.inputs.arguments(inst)

    def describe_inputs(self, inst: Instance) -> tuple[list[dict[str, Any]], str | None]:
        return self.inputs.describe_inputs(inst)


def _topological(dag: DAG) -> list[str]:
    return list(nx.topological_sort(dag.graph))
