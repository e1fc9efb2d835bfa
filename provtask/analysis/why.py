"""``provtask why``: why a task was reused from the cache, kept, or recomputed.

The task is compared with the same task (same id, else same name) in the nearest earlier run
of the same DAG — for a task kept by ``keep``, with the task whose output it kept: which part
of the cache key differs — a component of the code identity (with a unified diff of its
normalised source when the store has both), an input (by argument name) or the
``cache_version`` — or, when the keys are equal, why the earlier result could not be used.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from ..errors import NotFoundError
from ..states import TaskState
from ..store import Store

_SHORT = 12


def why(store: Store, run: str, task_id: str) -> dict[str, Any]:
    """Explain a task's cache hit or miss.

    Returns ``task`` (the task's row: state, cache status, note, source), ``compared_with``
    (the earlier task, or None) and ``differences``: one dict per differing part of the key,
    with ``part`` (``code``, ``input`` or ``cache_version``), ``name``, ``before``, ``after``
    and, for code, ``diff`` (unified diff lines of the normalised source, empty if unknown).
    ``explanation`` says it in words.
    """
    run_id = store.resolve_run(run)
    task = _task_row(store, "t.run_id = ? AND t.task_id = ?", (run_id, task_id))
    if task is None:
        raise NotFoundError(f"run {run_id} has no task {task_id!r}; list them: provtask tasks")
    if task["cache"] == "kept":
        where = "t.run_id = ? AND t.task_id = ?"
        earlier = _task_row(store, where, (task["source_run"], task["source_task"]))
    else:
        earlier = _nearest_earlier(store, run_id, task)
    differences = _differences(store, earlier, task) if earlier else []
    return {
        "task": task,
        "compared_with": earlier,
        "differences": differences,
        "explanation": _explain(task, earlier, differences),
    }


def _task_row(store: Store, where: str, params: tuple) -> dict[str, Any] | None:
    cursor = store.conn.execute(
        "SELECT t.run_id, t.task_id, t.name, t.kind, t.state, t.code_hash, t.inputs, "
        "t.input_hash, t.cache_key, t.cache_version, t.cache, t.cache_note, t.source_run, "
        "t.source_task, t.source_attempt, r.started_at FROM tasks t "
        f"JOIN runs r ON r.run_id = t.run_id WHERE {where} "
        "ORDER BY r.started_at DESC, t.rowid LIMIT 1",
        params,
    )
    row = cursor.fetchone()
    if row is None:
        return None
    record = dict(zip([c[0] for c in cursor.description], row, strict=True))
    record["inputs"] = json.loads(record["inputs"]) if record["inputs"] else None
    return record


def _nearest_earlier(store: Store, run_id: str, task: dict[str, Any]) -> dict[str, Any] | None:
    (dag_name,) = store.conn.execute(
        "SELECT dag_name FROM runs WHERE run_id = ?", (run_id,)
    ).fetchone()
    scope = "r.dag_name = ? AND r.started_at < ? AND t.run_id != ?"
    params = (dag_name, task["started_at"], run_id)
    return _task_row(store, f"{scope} AND t.task_id = ?", (*params, task["task_id"])) or (
        _task_row(store, f"{scope} AND t.name = ?", (*params, task["name"]))
    )


def _differences(store: Store, before: dict[str, Any], after: dict[str, Any]) -> list[dict]:
    found: list[dict[str, Any]] = []
    if before["code_hash"] != after["code_hash"]:
        old, old_sources = _components(store, before["code_hash"])
        new, new_sources = _components(store, after["code_hash"])
        for name in sorted(set(old) | set(new)):
            if old.get(name) != new.get(name):
                found.append(
                    {
                        "part": "code",
                        "name": name,
                        "before": old.get(name),
                        "after": new.get(name),
                        "diff": _diff(name, old_sources.get(name), new_sources.get(name)),
                    }
                )
        if not found:  # components unknown (a store from before they were kept)
            found.append(
                {
                    "part": "code",
                    "name": "code_hash",
                    "before": before["code_hash"],
                    "after": after["code_hash"],
                    "diff": [],
                }
            )
    if before["inputs"] is not None and after["inputs"] is not None:
        old_inputs = {entry["name"]: entry for entry in before["inputs"]}
        new_inputs = {entry["name"]: entry for entry in after["inputs"]}
        for name in [*new_inputs, *(n for n in old_inputs if n not in new_inputs)]:
            old, new = old_inputs.get(name), new_inputs.get(name)
            if old is None or new is None or old["hash"] != new["hash"]:
                found.append(
                    {"part": "input", "name": name, "before": _show(old), "after": _show(new)}
                )
    if before["cache_version"] != after["cache_version"]:
        found.append(
            {
                "part": "cache_version",
                "name": "cache_version",
                "before": before["cache_version"],
                "after": after["cache_version"],
            }
        )
    return found


def _components(store: Store, code_hash: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """A code hash's components and the normalised sources known for them."""
    row = store.conn.execute(
        "SELECT components, sources FROM code WHERE code_hash = ?", (code_hash,)
    ).fetchone()
    if row is None:
        return {}, {}
    return json.loads(row[0]), json.loads(row[1] or "{}")


def _diff(name: str, before: str | None, after: str | None) -> list[str]:
    """Unified diff lines between two normalised sources (none if either is unknown and the
    component is not new or gone)."""
    if before is None and after is None:
        return []
    lines = difflib.unified_diff(
        (before or "").splitlines(),
        (after or "").splitlines(),
        fromfile=f"{name} (before)",
        tofile=f"{name} (after)",
        lineterm="",
    )
    return list(lines)


def _show(entry: dict[str, Any] | None) -> str | None:
    """An input as a person reads it: its value, or the task it came from, and its hash."""
    if entry is None:
        return None
    if entry.get("hash") is None:
        return "no stable hash"
    digest = entry["hash"][:_SHORT] + "…"
    if "repr" in entry:
        return f"{entry['repr']} ({digest})"
    if "task" in entry:
        return f"output of {entry['task']} ({digest})"
    return digest


def _explain(task: dict[str, Any], earlier: dict[str, Any] | None, differences: list) -> str:
    lines = [f"task {task['task_id']} of run {task['run_id']}: {task['state']}"]
    status, note = task["cache"], task["cache_note"]
    if status == "hit":
        lines.append(
            f"reused the output of run {task['source_run']}, task {task['source_task']}, "
            f"attempt {task['source_attempt']} (same cache key {task['cache_key'][:_SHORT]}…)"
        )
        return "\n".join(lines)
    if status is None:
        lines.append("it never became ready, so it was not looked up in the cache")
        return "\n".join(lines)
    lines.append(f"cache: {status}" + (f" ({note})" if note else ""))
    if status == "kept" and earlier is not None:
        lines.append(
            f"compared with the kept output's task, run {earlier['run_id']}, task "
            f"{earlier['task_id']}:"
        )
        lines += _show_differences(differences)
        return "\n".join(lines)
    if earlier is None:
        lines.append("no earlier run of this DAG has this task: nothing to reuse")
        return "\n".join(lines)
    lines.append(
        f"compared with run {earlier['run_id']}, task {earlier['task_id']} ({earlier['state']}):"
    )
    lines += _show_differences(differences)
    if differences:
        return "\n".join(lines)
    if earlier["cache_key"] is None:
        lines.append("  the earlier task has no cache key (it never ran, or caching was off)")
    elif earlier["cache_key"] != task["cache_key"]:
        lines.append("  the keys differ only by what the task's cache_key function returned")
    elif not TaskState(earlier["state"]).ok:
        lines.append(f"  same key, but the earlier task ended {earlier['state']}: not reusable")
    else:
        lines.append("  same key: the earlier output was not usable (see the note above)")
    return "\n".join(lines)


def _show_differences(differences: list[dict[str, Any]]) -> list[str]:
    lines = []
    for diff in differences:
        before, after = diff["before"], diff["after"]
        if diff["part"] == "code" and before and after and len(before) == len(after) == 64:
            before, after = before[:_SHORT] + "…", after[:_SHORT] + "…"
        lines.append(f"  {diff['part']} {diff['name']}: {before} -> {after}")
        lines += [f"    {line}" for line in diff.get("diff", [])]
    return lines
