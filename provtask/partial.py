"""Partial results: a task declared ``allow_failed=True`` runs although some elements of an
upstream map failed, as Airflow's ``trigger_rule`` or Nextflow's ``errorStrategy 'ignore'``.

It receives the map's list as usual, with a :class:`Failed` marker in place of each element
that did not succeed. ``Store.output(run, map_node, partial=True)`` reads such a list back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .hashing import combine

if TYPE_CHECKING:
    from .engine.rungraph import Instance


@dataclass(frozen=True)
class Failed:
    """The place of a map element that produced no value: its task id, state and error."""

    task_id: str
    state: str
    error: str | None = None

    def __bool__(self) -> bool:  # ``[v for v in values if v]`` keeps the successes
        return False


def succeeded(values: Iterable[Any]) -> list[Any]:
    """The values that are not :class:`Failed` markers."""
    return [value for value in values if not isinstance(value, Failed)]


def runs_on_partial(dependent: Instance, source: Instance) -> bool:
    """Whether ``dependent`` runs although the map ``source`` failed: it allows failed
    elements, and at least one element succeeded."""
    return (
        dependent.task.allow_failed
        and source.kind == "map"
        and any(child.state.ok for child in source.children)
    )


def marker(child: Instance) -> Failed:
    return Failed(child.task_id, child.state.value, child.attempts.error)


def partial_identity(node: Instance) -> str:
    """The identity of a failed map's partial list: its elements' output hashes, and which
    elements failed (so a cached consumer of the partial list never stands for the whole)."""
    return combine([child.output_hash or f"failed:{child.task_id}" for child in node.children])
