"""Escalating retries: what a task's next attempt asks for after a failure of a known cause.

``@task(retries=2, on_oom={"memory": "x2"}, on_timeout={"walltime": "+30m"})``: each option
maps resource fields to a change applied to the failed attempt's resources: ``"x2"``
multiplies, ``"+4GB"`` adds, anything else (``"16GB"``, ``"4h"``, ``"bigmem"``) replaces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from .errors import ResourceError
from .resources import Resources, make_resources, parse_memory, parse_walltime

ESCALATION_OPTIONS = {"on_oom": "oom", "on_timeout": "timeout", "on_node_failure": "node_failure"}
FIELDS = ("memory", "walltime", "cpus_per_task", "partition")
_EXAMPLES = {
    "memory": "'x2', '+4GB' or '16GB'",
    "walltime": "'x2', '+30m' or '4h'",
    "cpus_per_task": "'x2', '+2' or 8",
    "partition": "'bigmem'",
}


@dataclass(frozen=True)
class Change:
    """One field's change: ``how`` is "x" (multiply), "+" (add) or "=" (replace)."""

    field: str
    how: Literal["x", "+", "="]
    amount: Any  # factor, or bytes / seconds / count / partition name
    given: Any  # as the user wrote it

    def apply(self, current: Any) -> Any:
        if self.how == "=":
            return self.amount
        if self.how == "+":
            return current + self.amount
        return math.ceil(current * self.amount)


@dataclass(frozen=True)
class Escalation:
    """The changes a task asks for after each failure cause (empty: retry unchanged)."""

    by_cause: tuple[tuple[str, tuple[Change, ...]], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.by_cause)

    def changes(self, cause: str) -> tuple[Change, ...]:
        return dict(self.by_cause).get(cause, ())

    def option(self, name: str) -> dict[str, Any] | None:
        """The user's value of ``on_oom``, ``on_timeout`` or ``on_node_failure``."""
        changes = self.changes(ESCALATION_OPTIONS[name])
        return {c.field: c.given for c in changes} or None

    def escalate(self, resources: Resources, cause: str) -> dict[str, Any]:
        """The fields that change for the attempt after one that failed with ``cause``."""
        return {c.field: c.apply(getattr(resources, c.field)) for c in self.changes(cause)}


def make_escalation(resources: Resources, kind: str, **options: Any) -> Escalation:
    """Validate ``on_oom``, ``on_timeout`` and ``on_node_failure`` against the task's
    resources; every error names the option and the field."""
    by_cause = []
    for name, cause in ESCALATION_OPTIONS.items():
        spec = options.get(name)
        if spec is None:
            continue
        if kind != "python":
            raise ResourceError(f"{name}: escalating retries are for @task only in this version")
        if not isinstance(spec, dict) or not spec:
            raise ResourceError(
                f"{name}: expected a dict of resource changes such as {{'memory': 'x2'}}, "
                f"got {spec!r}"
            )
        changes = tuple(_change(name, field, value, resources) for field, value in spec.items())
        by_cause.append((cause, changes))
    if by_cause and resources.retries == 0:
        names = ", ".join(name for name in ESCALATION_OPTIONS if options.get(name) is not None)
        raise ResourceError(
            f"{names}: escalation changes the resources of retries, but the task has "
            "retries=0; set retries=N (N >= 1)"
        )
    return Escalation(tuple(by_cause))


def _change(option: str, field: str, value: Any, resources: Resources) -> Change:
    where = f"{option}[{field!r}]"
    if field not in FIELDS:
        raise ResourceError(f"{option}: cannot change {field!r}; fields: {', '.join(FIELDS)}")
    if field == "partition":
        try:
            make_resources(partition=value)
        except ResourceError as exc:
            raise ResourceError(f"{where}: {exc}") from None
        return Change(field, "=", value, value)
    stripped = value.strip() if isinstance(value, str) else ""
    how = stripped[0] if stripped[:1] in ("x", "+") else "="
    amount_text = stripped[1:] if how != "=" else value
    try:
        if how == "x":
            amount: Any = float(amount_text)
            if not math.isfinite(amount) or amount <= 1:
                raise ValueError
        else:
            amount = _amount(field, amount_text, where)
    except (ValueError, ResourceError):
        raise ResourceError(
            f"{where}: cannot read {value!r}; write {_EXAMPLES[field]} (a factor must be > 1)"
        ) from None
    if how != "=" and getattr(resources, field) is None:
        raise ResourceError(
            f"{where}: {value!r} changes the task's {field}, which is not set; set {field}=... "
            f"on the task or give an absolute value such as {_EXAMPLES[field].split()[-1]}"
        )
    return Change(field, how, amount, value)


def _amount(field: str, value: Any, where: str) -> int:
    if field == "memory":
        return parse_memory(value, where)
    if field == "walltime":
        return parse_walltime(value, where)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(value)
    return value
