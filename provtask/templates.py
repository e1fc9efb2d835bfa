"""Task-argument templates: constants with references (:class:`~provtask.refs.Ref`,
:class:`~provtask.refs.ParamRef`) inside. Every walk over task arguments goes through here.

The one rule: references may sit in lists, tuples and dict *values*, at any depth. Dict keys
and sets hold constants only; a reference there is refused when the DAG is built (see
:func:`misplaced_ref`), since neither its value nor its hash exists before the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from .refs import ParamRef, Ref

Path = tuple[Any, ...]  # positions and dict keys from an argument down to a leaf
_ATOMS = (str, int, float, bool, bytes, type(None))  # arguments that cannot hold a reference


def is_reference(value: Any) -> bool:
    return isinstance(value, Ref | ParamRef)


def iter_refs(template: Any) -> Iterator[Ref | ParamRef]:
    """Every reference in a template, depth first."""
    if isinstance(template, _ATOMS):
        return
    if isinstance(template, Ref | ParamRef):
        yield template
    elif isinstance(template, list | tuple):
        for item in template:
            yield from iter_refs(item)
    elif isinstance(template, dict):
        for item in template.values():
            yield from iter_refs(item)


def has_refs(template: Any) -> bool:
    return next(iter_refs(template), None) is not None


def substitute(
    template: Any,
    replace: Callable[[Any, Path | None], Any],
    is_leaf: Callable[[Any], bool] = is_reference,
    path: Path | None = None,
) -> Any:
    """``template`` with each leaf (by default a reference) replaced by ``replace(leaf,
    path)``; lists, tuples and dicts are copied on the way. ``path`` is None unless the
    caller passes a starting path (``()``), then each leaf's path is given."""
    if isinstance(template, _ATOMS):
        return template
    if is_leaf(template):
        return replace(template, path)
    if isinstance(template, list | tuple):
        if path is None:
            items = [substitute(item, replace, is_leaf) for item in template]
        else:
            items = [
                substitute(item, replace, is_leaf, (*path, i)) for i, item in enumerate(template)
            ]
        return items if isinstance(template, list) else tuple(items)
    if isinstance(template, dict):
        return {
            key: substitute(item, replace, is_leaf, None if path is None else (*path, key))
            for key, item in template.items()
        }
    return template


def misplaced_ref(template: Any, where: str = "") -> tuple[Ref | ParamRef, str] | None:
    """The first reference in a dict key or a set, with where it is, or None."""
    if isinstance(template, _ATOMS):
        return None
    if isinstance(template, Ref | ParamRef):
        return (template, where) if where else None
    if isinstance(template, set | frozenset):
        items: list[tuple[Any, str]] = [(item, where or "inside a set") for item in template]
    elif isinstance(template, list | tuple):
        items = [(item, where) for item in template]
    elif isinstance(template, dict):
        items = [(key, where or "as a dict key") for key in template]
        items += [(value, where) for value in template.values()]
    else:
        return None
    for item, item_where in items:
        found = misplaced_ref(item, item_where)
        if found is not None:
            return found
    return None
