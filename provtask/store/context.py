"""Reading a run's recorded context (written by :mod:`provtask.runcontext`)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ..errors import NotFoundError
from ..params_codec import decode_params

_QUERY = """
SELECT r.run_id, r.dag_name, r.dag_file, c.dag_hash, dag.text AS dag_source, c.git_commit,
       c.git_dirty, clusters.text AS clusters_config, c.clusters_hash, c.clusters_origin,
       c.params, c.command_line, c.cwd, versions.text AS versions, r.host, r.user, c.env, c.keep,
       r.replay_of
FROM runs r
JOIN run_context c ON c.run_id = r.run_id
LEFT JOIN texts dag ON dag.hash = c.dag_hash
LEFT JOIN texts clusters ON clusters.hash = c.clusters_hash
LEFT JOIN texts versions ON versions.hash = c.versions_hash
WHERE r.run_id = ?
"""


def read_run_context(conn: sqlite3.Connection, run_id: str) -> dict[str, Any]:
    """The context of ``run_id`` as plain Python (see :meth:`Store.run_context`)."""
    cursor = conn.execute(_QUERY, (run_id,))
    row = cursor.fetchone()
    if row is None:
        raise NotFoundError(
            f"run {run_id} has no recorded context (it was made by a provtask older than "
            "schema 9); run it again to record one"
        )
    context = dict(zip([c[0] for c in cursor.description], row, strict=True))
    context["git_dirty"] = None if context["git_dirty"] is None else bool(context["git_dirty"])
    context["params"] = decode_params(context["params"])
    for name in ("command_line", "env", "keep"):
        context[name] = json.loads(context[name])
    context["versions"] = json.loads(context["versions"] or "{}")
    return context
