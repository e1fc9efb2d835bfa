"""A run as W3C PROV-JSON, written with the ``prov`` package.

Activities: the run and each attempt (``wasInformedBy`` the run). Entities: the DAG file
(the plan of the run's association with provtask), the param values and every artifact an
attempt used or generated, named by its hash, so lineage is a walk over ``used`` and
``wasGeneratedBy``. Agents: provtask (a SoftwareAgent) and the user who started the run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prov.model import ProvDocument

    from ..store import Store

NAMESPACE = "urn:provtask:"


def export_prov(store: Store, run: str, path: str | os.PathLike) -> dict[str, int]:
    """Write the PROV-JSON document of one run to ``path``; returns counts of records."""
    document = prov_document(store, run)
    Path(path).write_text(document.serialize(format="json", indent=1))
    return {
        "activities": len(list(document.get_records(_kind("ProvActivity")))),
        "entities": len(list(document.get_records(_kind("ProvEntity")))),
    }


def prov_document(store: Store, run: str) -> ProvDocument:
    """The PROV document of one run (see the module docstring)."""
    import pandas as pd
    from prov.model import ProvDocument

    run_id = store.resolve_run(run)
    info = store.run(run_id)
    doc = ProvDocument()
    doc.add_namespace("provtask", NAMESPACE)
    engine = doc.agent(
        "provtask:engine",
        {"prov:type": "prov:SoftwareAgent", "prov:label": f"provtask {info['provtask_version']}"},
    )
    user = doc.agent(
        f"provtask:user/{info['user']}@{info['host']}",
        {"prov:type": "prov:Person", "prov:label": info["user"]},
    )
    dag = doc.entity(
        f"provtask:dag/{info['dag_file_hash'] or info['dag_name']}",
        {"prov:type": "prov:Plan", "prov:label": info["dag_file"] or info["dag_name"]},
    )
    the_run = doc.activity(
        f"provtask:run/{run_id}",
        _time(info["started_at"]),
        _time(info["ended_at"]),
        {"prov:label": f"run of {info['dag_name']}", "provtask:status": info["status"]},
    )
    doc.wasAssociatedWith(the_run, engine, dag)
    doc.wasStartedBy(the_run, user)
    for name, value in info["params"].items():
        param = doc.entity(
            f"provtask:run/{run_id}/param/{name}",
            {"prov:label": name, "prov:value": json.dumps(value)},
        )
        doc.used(the_run, param)
    tasks = store.tasks(run_id).set_index("task_id")
    artifacts = store.artifacts(run_id)
    previews = dict(zip(artifacts["hash"], artifacts["preview"], strict=True))
    values: dict[str, Any] = {}

    def value(hash_: str, shown: str | None) -> Any:
        """One entity per value hash: an artifact, or a literal argument / map element."""
        if hash_ not in values:
            label = previews.get(hash_) or shown or "an element of a .map input"
            values[hash_] = doc.entity(f"provtask:value/{hash_}", {"prov:label": label})
        return values[hash_]

    for row in store.attempts(run_id).itertuples():
        task = tasks.loc[row.task_id]
        attributes: dict[str, Any] = {
            "prov:label": f"{row.task_id} attempt {row.attempt}",
            "provtask:task": task["name"],
            "provtask:status": row.status,
            "provtask:partition": row.partition,
            "provtask:batch_job_id": row.batch_job_id,
            "provtask:cpu_time_seconds": _seconds(row.cpu_time),
            "provtask:peak_rss_bytes": row.peak_rss,
            "provtask:mpi_ranks": row.mpi_ranks,
        }
        if isinstance(row.exc_type, str):
            attributes["provtask:error"] = f"{row.exc_type}: {row.exc_message}"
        attempt = doc.activity(
            f"provtask:attempt/{run_id}/{row.task_id}/{row.attempt}",
            _time(row.started_at),
            _time(row.ended_at),
            {k: _plain(v) for k, v in attributes.items() if not _missing(v, pd)},
        )
        doc.wasInformedBy(attempt, the_run)
        doc.wasAssociatedWith(attempt, engine)
        for entry in json.loads(task["inputs"] or "[]"):
            if "param" in entry:
                doc.used(attempt, f"provtask:run/{run_id}/param/{entry['param']}")
            else:
                doc.used(attempt, value(entry["hash"], entry.get("repr")))
        if row.status == "success" and isinstance(row.output_hash, str):
            doc.wasGeneratedBy(value(row.output_hash, None), attempt)
    return doc


def _kind(name: str) -> type:
    import prov.model

    return getattr(prov.model, name)


def _time(value: Any) -> Any:
    import pandas as pd

    return (
        None if value is None or pd.isna(value) else pd.Timestamp(value).to_pydatetime(warn=False)
    )


def _missing(value: Any, pd: Any) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def _seconds(value: Any) -> float | None:
    """A duration from the attempts frame (a timedelta) in seconds."""
    import pandas as pd

    return None if value is None or pd.isna(value) else pd.Timedelta(value).total_seconds()


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
