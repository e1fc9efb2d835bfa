"""Lineage: which tasks, outputs and params an output of a run was made from.

The walk goes upstream from one task along the run's ``edges``. A map node's upstream is its
elements (its output is the list of theirs), and each task's ``inputs`` that are DAG params
end the walk. Each ancestor appears once, at its shortest distance from the target.
"""

from __future__ import annotations

import json
import re
from collections import deque
from typing import TYPE_CHECKING

from ..errors import NotFoundError

if TYPE_CHECKING:
    import pandas as pd

    from ..store import Store

COLUMNS = [
    "depth",
    "task_id",
    "parent",
    "feeds",
    "kind",
    "name",
    "label",
    "item",
    "state",
    "attempt",
    "worker",
    "hostname",
    "output_hash",
    "code_hash",
    "input_hash",
    "started_at",
    "ended_at",
    "value",
]
_HEX_PREFIX = re.compile(r"[0-9a-f]{6,64}")
PARAM_PREFIX = "param:"


def lineage(store: Store, run: str, target: str) -> pd.DataFrame:
    """One row per ancestor of ``target`` (a task id, or a prefix of its output hash).

    ``depth`` is 0 for the target; ``parent`` is the task through which a row was first
    reached, ``feeds`` every task of the lineage it is an input of. A map element's ``item``
    is the index it took of its upstream list, and ``label`` its readable name. Params are
    rows of kind ``param`` with id ``param:NAME`` and their value's hash in ``output_hash``.
    """
    import pandas as pd

    run_id = store.resolve_run(run)
    tasks = store.tasks(run_id).set_index("task_id", drop=False)
    start = _resolve_target(tasks, target, run_id)
    upstream = _upstream(store.edges(run_id), tasks)
    last = _last_attempts(store.attempts(run_id))

    rows: dict[str, dict] = {start: _task_row(tasks.loc[start], last, 0, None)}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        depth = rows[node]["depth"] + 1
        parents = upstream.get(node, []) + _param_inputs(tasks.loc[node, "inputs"])
        for source in parents:
            if source in rows:
                rows[source]["feeds"].append(node)
                continue
            if source.startswith(PARAM_PREFIX):
                rows[source] = _param_row(source, tasks.loc[node, "inputs"], depth, node)
            else:
                rows[source] = _task_row(tasks.loc[source], last, depth, node)
                queue.append(source)
    frame = pd.DataFrame(list(rows.values()), columns=COLUMNS)
    frame["attempt"] = frame["attempt"].astype("Int64")
    return frame


def _resolve_target(tasks: pd.DataFrame, target: str, run_id: str) -> str:
    if target in tasks.index:
        return target
    if _HEX_PREFIX.fullmatch(target):
        hashes = tasks["output_hash"].fillna("")
        matches = list(tasks.index[hashes.str.startswith(target)])
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise NotFoundError(
                f"output hash prefix {target!r} is the output of several tasks of run "
                f"{run_id} ({', '.join(matches[:5])}); name one of them by task id"
            )
    raise NotFoundError(
        f"run {run_id} has no task {target!r} and no task whose output hash starts with it; "
        f"list its tasks with 'provtask tasks {run_id}'"
    )


def _upstream(edges: pd.DataFrame, tasks: pd.DataFrame) -> dict[str, list[str]]:
    """Task id → the task ids it was computed from, in a stable order."""
    upstream: dict[str, list[str]] = {}
    for source, target in zip(edges["source"], edges["target"], strict=True):
        upstream.setdefault(target, []).append(source)
    for sources in upstream.values():
        sources.sort()
    elements = tasks[tasks["kind"] == "element"]
    for map_id, group in elements.groupby("parent", sort=False):
        # A map node's own edge (from what it maps over) is shown on its elements instead.
        upstream[map_id] = list(group["task_id"])
    return upstream


def _param_inputs(inputs: object) -> list[str]:
    return [PARAM_PREFIX + entry["param"] for entry in _decode(inputs) if "param" in entry]


def _decode(inputs: object) -> list[dict]:
    return json.loads(inputs) if isinstance(inputs, str) else []


def _last_attempts(attempts: pd.DataFrame) -> pd.DataFrame:
    """Per task, the attempt that decided its state: the successful one, else the last."""
    ranked = attempts.assign(ok=attempts["status"] == "success")
    ranked = ranked.sort_values(["task_id", "ok", "attempt"])
    return ranked.drop_duplicates("task_id", keep="last").set_index("task_id")


def _task_row(task: pd.Series, last: pd.DataFrame, depth: int, parent: str | None) -> dict:
    attempt = last.loc[task["task_id"]] if task["task_id"] in last.index else None
    return {
        "depth": depth,
        "task_id": task["task_id"],
        "parent": parent,
        "feeds": [parent] if parent else [],
        "kind": task["kind"],
        "name": task["name"],
        "label": task["label"] if isinstance(task.get("label"), str) else None,
        "item": _item(task["inputs"]),
        "state": task["state"],
        "attempt": None if attempt is None else int(attempt["attempt"]),
        "worker": None if attempt is None else attempt["worker"],
        "hostname": None if attempt is None else attempt["hostname"],
        "output_hash": task["output_hash"],
        "code_hash": task["code_hash"],
        "input_hash": task["input_hash"],
        "started_at": task["started_at"],
        "ended_at": task["ended_at"],
        "value": None,
    }


def _item(inputs: object) -> int | None:
    """Which item of an upstream list a map element took (None for other tasks)."""
    return next((e["item"] for e in _decode(inputs) if "item" in e), None)


def _param_row(param_id: str, inputs: object, depth: int, parent: str) -> dict:
    name = param_id.removeprefix(PARAM_PREFIX)
    entry = next(e for e in _decode(inputs) if e.get("param") == name)
    return {
        "depth": depth,
        "task_id": param_id,
        "parent": parent,
        "feeds": [parent],
        "kind": "param",
        "name": name,
        "output_hash": entry["hash"],
        "value": entry.get("repr"),
    }
