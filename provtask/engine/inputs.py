"""A run's task arguments: resolved to futures for workers, and identified for caching.

Walks go through :mod:`provtask.templates`; upstream outputs are identified by their hashes
(so keys are Merkle-style), constants by value (``value_hash``), params by their values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import UnhashableValue
from ..hashing import combine, value_hash
from ..partial import marker, partial_identity
from ..refs import ParamRef, Ref
from ..states import TaskState
from ..store.artifacts import preview
from ..templates import has_refs, iter_refs, substitute
from .instance import Instance

if TYPE_CHECKING:
    from .rungraph import RunGraph

_SCALARS = (int, float, str, bytes, bool, type(None))


class Inputs:
    """The arguments of the instances of one run graph."""

    def __init__(self, graph: RunGraph) -> None:
        self.graph = graph
        self._constant_hashes: dict[int, str | UnhashableValue] = {}

    def resolve(self, template: Any, load: Callable[[Instance], Any] | None = None) -> Any:
        """Arguments with Refs replaced by futures (a list for a map) and params by values.

        ``load`` gives the future of an upstream output where the consumer runs: a cached
        output (which no attempt of this run computed), or one made on another cluster.
        """
        return substitute(template, lambda ref, _: self._resolve_ref(ref, load))

    def _resolve_ref(self, ref: Ref | ParamRef, load: Callable[[Instance], Any] | None) -> Any:
        if isinstance(ref, ParamRef):
            return self.graph.params[ref.name]
        inst = self.graph.instances[ref.node_id]
        if inst.kind == "map":
            return [
                _future(child, load) if child.state.ok else marker(child) for child in inst.children
            ]
        return _future(inst, load)

    def arguments(self, inst: Instance) -> dict[str, Any]:
        """The task's arguments by name, with each upstream output replaced by its hash (what a
        ``cache_key`` function receives)."""
        names = list(inst.task.signature.parameters)
        arguments = {}
        positional = [
            (names[i] if i < len(names) else f"args[{i}]", value)
            for i, value in enumerate(inst.node.args)
        ]
        for name, value in [*positional, *inst.node.kwargs.items()]:
            arguments[name] = self._with_hashes(value)
        for entry in inst.caching.inputs or ():
            if "item" in entry:  # an element's pick of an upstream list
                arguments[entry["name"]] = entry["hash"]
        return arguments

    def _with_hashes(self, template: Any) -> Any:
        def replace(ref: Ref | ParamRef, _: object) -> Any:
            if isinstance(ref, ParamRef):
                return self.graph.params[ref.name]
            return self.graph.instances[ref.node_id].output_hash

        return substitute(template, replace)

    def describe_inputs(self, inst: Instance) -> tuple[list[dict[str, Any]], str | None]:
        """Readable inputs with their identities, and one hash over all of them.

        An argument with no stable hash has ``hash`` None and its reason in ``unhashable``;
        the combined hash is then None too.
        """
        names = list(inst.task.signature.parameters)
        picked = dict(inst.node.picks)
        described = []
        for position, value in enumerate(inst.node.args):
            name = names[position] if position < len(names) else f"args[{position}]"
            described.append(self._describe(name, value, picked.get(position)))
        for name, value in inst.node.kwargs.items():
            described.append(self._describe(name, value, None))
        if any(d["hash"] is None for d in described):
            return described, None
        digest = combine([f"{d['name']}={d['hash']}" for d in described])
        return described, digest

    def _describe(self, name: str, value: Any, pick: int | None) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": name}
        try:
            entry["hash"] = self._identity(value)
        except UnhashableValue as exc:
            exc.argument = name
            entry["hash"], entry["unhashable"] = None, str(exc)
        if isinstance(value, _SCALARS):
            entry["repr"] = preview(value)
        elif isinstance(value, Ref):
            entry["task"] = value.node_id
            if pick is not None:
                entry["item"] = pick
                entry["hash"] = combine([entry["hash"], str(pick)])
        elif isinstance(value, ParamRef):
            entry["param"] = value.name
            entry["repr"] = preview(self.graph.params[value.name])
        elif not has_refs(value):
            entry["repr"] = preview(value)
        else:
            entry["tasks"] = sorted({r.node_id for r in iter_refs(value) if isinstance(r, Ref)})
        return entry

    def _identity(self, template: Any) -> str:
        if isinstance(template, _SCALARS):
            return value_hash(template)
        if isinstance(template, Ref):
            source = self.graph.instances[template.node_id]
            if source.kind == "map" and source.state is TaskState.FAILED:
                return partial_identity(source)
            return source.output_hash or ""
        if isinstance(template, ParamRef):
            return value_hash(self.graph.params[template.name], memo=self.graph.memo)
        if isinstance(template, list | tuple) and has_refs(template):
            return combine([type(template).__name__, *(self._identity(t) for t in template)])
        if isinstance(template, dict) and has_refs(template):  # keys are constants
            items = sorted(f"{self._identity(k)}:{self._identity(v)}" for k, v in template.items())
            return combine(["dict", *items])
        key = id(template)
        if key not in self._constant_hashes:
            try:
                self._constant_hashes[key] = value_hash(template, memo=self.graph.memo)
            except UnhashableValue as exc:
                self._constant_hashes[key] = exc
        known = self._constant_hashes[key]
        if isinstance(known, UnhashableValue):
            raise UnhashableValue(known.problem, where=known.where)
        return known


def _future(inst: Instance, load: Callable[[Instance], Any] | None) -> Any:
    return load(inst) if load is not None else inst.attempts.future
