"""Readable names of map elements (and calls), as Nextflow's ``tag``.

A task's ``label`` is a ``str.format`` template over its arguments and the keys of its
dict arguments: ``@task(label="T={T} seed={seed}")`` for ``simulate(params: dict)``. A map
element without a template is labelled by its own input item(s). Labels are made on the
worker, where the values are, and bounded so a huge item cannot bloat the store.
"""

from __future__ import annotations

import inspect
import string
from collections.abc import Callable
from typing import Any

from .errors import ResourceError

MAX_LABEL = 120  # characters kept of a label


def check_template(template: Any) -> str | None:
    """A label template, validated when the task is declared."""
    if template is None:
        return None
    if not isinstance(template, str):
        raise ResourceError(f"label: expected a format string such as 'T={{T}}', got {template!r}")
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ResourceError(f"label: {template!r} is not a valid format string: {exc}") from None
    if "" in fields or any(name.isdigit() for name in fields):
        raise ResourceError(f"label: name each field, as in 'T={{T}}', not {template!r}")
    return template


def template_of(task: Any, kind: str) -> str | None:
    """What an attempt is labelled by: the task's template; ``""`` (its own items) for a map
    element without one; None for a call without one."""
    if task.label is not None:
        return task.label
    return "" if kind == "element" else None


def make_label(
    template: str | None, function: Callable, args: tuple | list, kwargs: dict[str, Any]
) -> str | None:
    """The attempt's label: the template filled in, ``""`` the element's own item(s) (its
    positional arguments: one per mapped iterable), None none.

    Never raises: a template that does not fit the values says so in the label."""
    if template is None:
        return None
    if template == "":
        return _bounded(" ".join(_readable(item) for item in args))
    namespace = _namespace(function, args, kwargs)
    try:
        return _bounded(template.format_map(namespace))
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        return _bounded(f"<label {template!r}: {type(exc).__name__} {exc}>")


def _namespace(function: Callable, args: tuple | list, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Arguments by name, plus the keys of dict arguments (arguments win on a clash)."""
    try:
        bound = inspect.signature(function).bind_partial(*args, **kwargs).arguments
    except (TypeError, ValueError):
        bound = dict(kwargs)
    namespace: dict[str, Any] = {}
    for value in bound.values():
        if isinstance(value, dict):
            namespace.update({k: v for k, v in value.items() if isinstance(k, str)})
    namespace.update(bound)
    return namespace


def _readable(item: Any) -> str:
    """``T=320 seed=2`` for a dict of simple values, else the item's repr."""
    if isinstance(item, dict) and all(isinstance(k, str) for k in item):
        return " ".join(f"{k}={_short(v)}" for k, v in item.items())
    return _short(item)


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not fail the task
        text = f"<{type(value).__name__}: repr failed: {exc}>"
    return _bounded(text)


def _bounded(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"
