"""``provtask diff``: what differs between two runs, from their recorded contexts and tasks.

Params (with their exact types), code components (by task name), the DAG source, the
clusters config, package versions, recorded environment variables, and per-task output
hashes. Equal parts are left out, so two runs of the same code and params give empty lists.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from ..store import Store

_SHORT = 12


def diff_runs(store: Store, run_a: str, run_b: str) -> dict[str, Any]:
    """The differences between runs ``run_a`` and ``run_b``.

    Returns ``run_a``, ``run_b`` (full ids) and lists of dicts, each with the value in A and
    in B (``a``, ``b``; ``None`` where a run lacks it; params as their ``repr``, which tells
    ``(1, 2)`` from ``[1, 2]``): ``params`` (``name``), ``code`` (``component``, ``tasks``:
    the task names whose code has it), ``dag_source`` and ``clusters`` (``origin``, ``diff``:
    unified diff lines), ``versions`` (``package``), ``env`` (``name``) and ``outputs``
    (``task_id``).
    """
    a, b = store.run_context(run_a), store.run_context(run_b)
    return {
        "run_a": a["run_id"],
        "run_b": b["run_id"],
        "params": _mapping(a["params"], b["params"], "name", repr),
        "code": _code(store, a["run_id"], b["run_id"]),
        "dag_source": _text(a, b, "dag_source", "dag_file"),
        "clusters": _text(a, b, "clusters_config", "clusters_origin"),
        "versions": _mapping(a["versions"], b["versions"], "package"),
        "env": _mapping(a["env"], b["env"], "name"),
        "outputs": _outputs(store, a["run_id"], b["run_id"]),
    }


def _mapping(a: dict, b: dict, label: str, show: Any = None) -> list[dict[str, Any]]:
    show = show or (lambda value: value)
    found = []
    for name in [*a, *(n for n in b if n not in a)]:
        if name not in a or name not in b or show(a[name]) != show(b[name]):
            found.append({label: name, "a": _get(a, name, show), "b": _get(b, name, show)})
    return found


def _get(mapping: dict, name: str, show: Any) -> Any:
    return show(mapping[name]) if name in mapping else None


def _code(store: Store, run_a: str, run_b: str) -> list[dict[str, Any]]:
    """Code components that differ, for the task names both runs have."""
    hashes_a, hashes_b = _code_hashes(store, run_a), _code_hashes(store, run_b)
    changes: dict[str, dict[str, Any]] = {}
    for name in hashes_a.keys() & hashes_b.keys():
        if hashes_a[name] == hashes_b[name]:
            continue
        old, new = _components(store, hashes_a[name]), _components(store, hashes_b[name])
        for component in sorted(old.keys() | new.keys()):
            if old.get(component) != new.get(component):
                entry = changes.setdefault(
                    component,
                    {
                        "component": component,
                        "tasks": [],
                        "a": old.get(component),
                        "b": new.get(component),
                    },
                )
                entry["tasks"].append(name)
    return [{**entry, "tasks": sorted(entry["tasks"])} for _, entry in sorted(changes.items())]


def _code_hashes(store: Store, run_id: str) -> dict[str, str]:
    rows = store.conn.execute(
        "SELECT name, code_hash FROM tasks WHERE run_id = ? AND kind != 'element' GROUP BY name",
        (run_id,),
    )
    return dict(rows.fetchall())


def _components(store: Store, code_hash: str) -> dict[str, str]:
    row = store.conn.execute(
        "SELECT components FROM code WHERE code_hash = ?", (code_hash,)
    ).fetchone()
    return json.loads(row[0]) if row else {}


def _text(a: dict, b: dict, key: str, origin: str) -> list[dict[str, Any]]:
    """One entry when the texts differ: their origins and a unified diff."""
    if a[key] == b[key]:
        return []
    lines = difflib.unified_diff(
        (a[key] or "").splitlines(),
        (b[key] or "").splitlines(),
        fromfile=f"{a[origin]} (run {a['run_id']})",
        tofile=f"{b[origin]} (run {b['run_id']})",
        lineterm="",
    )
    return [{"origin": origin, "a": a[origin], "b": b[origin], "diff": list(lines)}]


def _outputs(store: Store, run_a: str, run_b: str) -> list[dict[str, Any]]:
    """Tasks (map nodes left out) whose output hash differs, or that one run lacks."""
    query = "SELECT task_id, output_hash FROM tasks WHERE run_id = ? AND kind != 'map'"
    a = dict(store.conn.execute(query, (run_a,)).fetchall())
    b = dict(store.conn.execute(query, (run_b,)).fetchall())
    return _mapping(a, b, "task_id")
