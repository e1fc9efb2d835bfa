"""Runs as a Workflow Run RO-Crate: a Provenance Run Crate 0.5 written with ``rocrate``.

    root Dataset ── mainEntity ──▶ DAG file (File, SoftwareSourceCode, ComputationalWorkflow,
      │                             HowTo) ── input: FormalParameter per DAG param
      │                                      ── hasPart: SoftwareApplication per task definition
      │                                      ── step: HowToStep per DAG node ── workExample ─▶ tool
      ├─ mentions ─▶ CreateAction per run (instrument: the DAG; object: param values)
      │              CreateAction per attempt (instrument: its tool; object: inputs;
      │                                        result: output; resourceUsage)
      │              ControlAction per task (instrument: its step; object: its attempts)
      └─ OrganizeAction per run (instrument: provtask and the clusters config; result:
                                 the run; object: the ControlActions)

Values are entities named by their artifact hash, so one task's result is the very entity a
downstream task's action has as object. See docs/sharing.md for what a reader can rely on.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import NotFoundError, StoreError
from .crate_runs import Runs
from .crate_values import Values
from .crate_workflow import PROFILE_VERSION, PROFILES, Workflow

if TYPE_CHECKING:
    from rocrate.rocrate import ROCrate

    from ..store import Store

__all__ = ["PROFILES", "PROFILE_VERSION", "export_rocrate"]


def export_rocrate(
    store: Store,
    runs: list[str],
    target: str | os.PathLike,
    *,
    inline_limit: int = 0,
    license: str | None = None,
    accounting: bool = True,
) -> dict[str, int]:
    """Write a Provenance Run Crate of runs of one DAG to a folder, or a zip if ``target``
    ends in ``.zip``. Artifacts up to ``inline_limit`` bytes are included as files; others
    are referenced by hash. ``accounting`` adds sacct's MaxRSS and Elapsed of batch jobs
    when SLURM answers. Returns counts of the entities written."""
    from rocrate.rocrate import ROCrate

    run_ids = [store.resolve_run(ref) for ref in dict.fromkeys(runs)]
    infos = [_with_context(store, run_id) for run_id in run_ids]
    if len({info["dag_file_hash"] for info in infos}) > 1:
        raise StoreError(
            "one crate describes one DAG, and these runs ran different DAG files (or versions "
            "of one); export them to separate crates"
        )
    crate = ROCrate(version="1.1")
    counts = {"runs": 0, "attempts": 0, "tools": 0, "steps": 0, "inlined": 0}
    with tempfile.TemporaryDirectory(prefix="provtask-crate-") as folder:
        scratch = Path(folder)
        workflow = Workflow(crate, scratch, counts)
        workflow.describe(infos[0], license)
        values = Values(store, crate, workflow, scratch, inline_limit, counts)
        actions = Runs(store, crate, workflow, values, scratch, accounting, counts)
        for info in infos:
            actions.add(info)
        _single_values(crate)
        target = Path(target)
        if target.suffix == ".zip":
            crate.write_zip(target)
        else:
            crate.write(target)
    return counts


def _with_context(store: Store, run_id: str) -> dict[str, Any]:
    """The run's row with its recorded context (None for runs older than schema 9), params
    with their exact types when the context has them."""
    info = store.run(run_id)
    try:
        info["context"] = store.run_context(run_id)
    except NotFoundError:
        info["context"] = None
    else:
        info["params"] = info["context"]["params"]
    return info


def _single_values(crate: ROCrate) -> None:
    """One-element lists as plain values, as RO-Crate 1.1 recommends."""
    for entity in crate.get_entities():
        for key, value in list(entity.properties().items()):
            if key != "@type" and isinstance(value, list) and len(value) == 1:
                entity[key] = value[0]
