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

import hashlib
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import AccountingError, NotFoundError, StoreError

if TYPE_CHECKING:
    import pandas as pd
    from rocrate.model.contextentity import ContextEntity
    from rocrate.rocrate import ROCrate

    from ..store import Store

PROFILE_VERSION = "0.5"
PROFILES = {
    "Process Run Crate": f"https://w3id.org/ro/wfrun/process/{PROFILE_VERSION}",
    "Workflow Run Crate": f"https://w3id.org/ro/wfrun/workflow/{PROFILE_VERSION}",
    "Provenance Run Crate": f"https://w3id.org/ro/wfrun/provenance/{PROFILE_VERSION}",
    "Workflow RO-Crate": "https://w3id.org/workflowhub/workflow-ro-crate/1.0",
}
WFRUN_CONTEXT = "https://w3id.org/ro/terms/workflow-run/context"
PYTHON = "https://w3id.org/workflowhub/workflow-ro-crate#python"
_STATUS = {
    True: "http://schema.org/CompletedActionStatus",
    False: "http://schema.org/FailedActionStatus",
}
_PARAM_TYPES = {bool: "Boolean", int: "Integer", float: "Float", str: "Text"}
# UN/CEFACT common codes, as schema.org's unitCode expects.
SECONDS, BYTES, COUNT = "SEC", "AD", "C62"


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
    with tempfile.TemporaryDirectory(prefix="provtask-crate-") as scratch:
        builder = _Builder(store, crate, Path(scratch), inline_limit, accounting)
        builder.workflow(infos[0], license)
        for info in infos:
            builder.run(info)
        _single_values(crate)
        target = Path(target)
        if target.suffix == ".zip":
            crate.write_zip(target)
        else:
            crate.write(target)
    return builder.counts


class _Builder:
    """Adds a store's runs to one crate, one entity per thing, shared where they are shared."""

    def __init__(
        self, store: Store, crate: ROCrate, scratch: Path, inline_limit: int, accounting: bool
    ) -> None:
        self.store, self.crate, self.scratch = store, crate, scratch
        self.inline_limit, self.accounting = inline_limit, accounting
        self.counts = {"runs": 0, "attempts": 0, "tools": 0, "steps": 0, "inlined": 0}
        self.dag: Any = None
        self.tools: dict[str, ContextEntity] = {}
        self.steps: dict[str, ContextEntity] = {}
        self.params: dict[str, ContextEntity] = {}
        self.slots: dict[str, ContextEntity] = {}  # FormalParameter per tool input / output
        self.values: dict[str, Any] = {}  # artifact hash -> entity
        self.engine: ContextEntity | None = None

    # -- prospective: the DAG, its tools and steps --------------------------------------------
    def workflow(self, info: dict[str, Any], license: str | None) -> None:
        from rocrate.model.computationalworkflow import ComputationalWorkflow
        from rocrate.model.computerlanguage import ComputerLanguage
        from rocrate.model.contextentity import ContextEntity

        crate = self.crate
        root = crate.root_dataset
        crate.metadata.extra_contexts.append(WFRUN_CONTEXT)
        for name, uri in PROFILES.items():
            version = uri.rsplit("/", 1)[1]
            profile = crate.add(
                ContextEntity(
                    crate, uri, {"@type": "CreativeWork", "name": name, "version": version}
                )
            )
            root.append_to("conformsTo", profile)
        root["name"] = f"provtask run(s) of DAG {info['dag_name']}"
        root["description"] = (
            f"Provenance of provtask runs of the DAG {info['dag_name']!r}: every task "
            "attempt, its inputs, outputs and resource usage."
        )
        root["datePublished"] = datetime.now(timezone.utc).isoformat()
        root["license"] = license or "not stated: ask the run's owner (provtask export --license)"
        language = crate.add(
            ComputerLanguage(
                crate,
                PYTHON,
                {
                    "@type": "ComputerLanguage",
                    "name": "Python",
                    "url": {"@id": "https://www.python.org/"},
                    "version": info["python_version"],
                },
            )
        )
        source = self._dag_source(info)
        dag = crate.add_workflow(
            source,
            dest_path=Path(info["dag_file"] or "dag.py").name,
            main=True,
            lang=language,
            cls=ComputationalWorkflow,
            properties={
                "@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"],
                "name": info["dag_name"],
                "encodingFormat": "text/x-python",
            },
        )
        if info["dag_file_hash"]:
            dag["sha256"] = info["dag_file_hash"]
        context = info["context"]
        if context is not None and context["git_commit"]:
            dirty = " with uncommitted changes" if context["git_dirty"] else ""
            dag["version"] = f"git {context['git_commit']}{dirty}"
        for name, value in sorted(info["params"].items()):
            slot = crate.add_formal_parameter(
                name=name,
                additionalType=_PARAM_TYPES.get(type(value), "Text"),
                identifier=f"#param/{name}",
            )
            dag.append_to("input", slot)
            self.params[name] = slot
        self.dag = dag
        self.engine = crate.add(
            ContextEntity(
                crate,
                "#provtask",
                {
                    "@type": "SoftwareApplication",
                    "name": "provtask",
                    "version": info["provtask_version"],
                    "description": "DAGs of Python and MPI tasks on Dask / HPC clusters",
                },
            )
        )

    def _dag_source(self, info: dict[str, Any]) -> Path | None:
        """The DAG source the run recorded; for a run older than schema 9, the DAG file if
        it is still there with the content the run ran."""
        context = info["context"]
        if context is not None and context["dag_source"] is not None:
            path = self.scratch / "dag-source"
            path.write_text(context["dag_source"])
            return path
        path = Path(info["dag_file"]) if info["dag_file"] else None
        if path is None or not path.is_file():
            return None
        data = path.read_bytes()
        if info["dag_file_hash"] and _sha256(data) != info["dag_file_hash"]:
            return None
        return path

    def tool(self, task: Any) -> ContextEntity:
        """The SoftwareApplication of a task definition, with a FormalParameter per input."""
        from rocrate.model.contextentity import ContextEntity

        key = f"#tool/{task.name}"
        if key in self.tools:
            return self.tools[key]
        crate = self.crate
        resources = json.loads(task.resources or "{}")
        tool = crate.add(
            ContextEntity(
                crate,
                key,
                {
                    "@type": "SoftwareApplication",
                    "name": task.name,
                    "alternateName": task.function,
                    "identifier": task.code_hash,
                    "applicationCategory": "MPI program"
                    if resources.get("ntasks_per_node", 1) * resources.get("nodes", 1) > 1
                    or resources.get("launcher")
                    else "Python function",
                },
            )
        )
        self.dag.append_to("hasPart", tool)
        for entry in json.loads(task.inputs or "[]"):
            tool.append_to("input", self.slot(task.name, entry["name"], "input"))
        tool.append_to("output", self.slot(task.name, "result", "output"))
        self.tools[key] = tool
        self.counts["tools"] += 1
        return tool

    def slot(self, tool: str, name: str, kind: str) -> ContextEntity:
        key = f"#tool/{tool}/{kind}/{name}"
        if key not in self.slots:
            self.slots[key] = self.crate.add_formal_parameter(
                name=name, additionalType="DataType", identifier=key
            )
        return self.slots[key]

    def step(self, task: Any, tool: ContextEntity, position: int) -> ContextEntity:
        from rocrate.model.contextentity import ContextEntity

        key = f"#step/{task.task_id}"
        if key not in self.steps:
            self.steps[key] = step = self.crate.add(
                ContextEntity(
                    self.crate,
                    key,
                    {"@type": "HowToStep", "name": task.task_id, "position": position},
                )
            )
            step["workExample"] = tool
            self.dag.append_to("step", step)
            self.counts["steps"] += 1
        return self.steps[key]

    # -- retrospective: runs, attempts, values ------------------------------------------------
    def run(self, info: dict[str, Any]) -> None:
        from rocrate.model.contextentity import ContextEntity

        crate, run_id = self.crate, info["run_id"]
        tasks = self.store.tasks(run_id)
        attempts = self.store.attempts(run_id)
        jobs = self._accounting(run_id)
        inputs = [self.param_value(run_id, name, value) for name, value in info["params"].items()]
        run = crate.add_action(
            self.dag,
            identifier=f"#run/{run_id}",
            object=inputs,
            properties={
                "@type": "CreateAction",
                "name": f"Run {run_id} of DAG {info['dag_name']}",
                "startTime": _iso(info["started_at"]),
                "endTime": _iso(info["ended_at"]),
                "actionStatus": _STATUS[info["status"] == "success"],
                "agent": self._agent(info),
            },
        )
        if info["status"] != "success":
            failed = int((tasks["state"] == "failed").sum())
            run["error"] = info["error"] or f"{failed} task(s) failed (status {info['status']})"
        crate.root_dataset.append_to("mentions", run)
        controls = []
        rows = list(tasks.itertuples())
        nodes = {task.task_id: task for task in rows if task.kind != "element"}
        positions = {task_id: i for i, task_id in enumerate(nodes)}
        by_task: dict[str, list] = {}
        for row in attempts.itertuples():
            by_task.setdefault(row.task_id, []).append(row)
        for task in rows:
            if task.kind == "map":
                continue
            node = task.parent if task.kind == "element" else task.task_id
            tool = self.tool(task)
            step = self.step(nodes[node], tool, positions[node])
            actions = [
                self.attempt(run_id, task, row, tool, jobs) for row in by_task.get(task.task_id, [])
            ]
            if not actions:
                continue  # a cached or never-started task has no attempt in this run
            control = crate.add(
                ContextEntity(
                    crate,
                    f"#control/{run_id}/{task.task_id}",
                    {
                        "@type": "ControlAction",
                        "name": f"{task.task_id} in run {run_id}",
                        "actionStatus": _STATUS[task.state == "success"],
                    },
                )
            )
            control["instrument"] = step
            control["object"] = actions
            if task.state != "success" and isinstance(task.error, str):
                control["error"] = task.error
            controls.append(control)
        run["result"] = self._sinks(tasks)
        organize = crate.add(
            ContextEntity(
                crate,
                f"#organize/{run_id}",
                {
                    "@type": "OrganizeAction",
                    "name": f"provtask orchestrating run {run_id}",
                    "startTime": _iso(info["started_at"]),
                    "endTime": _iso(info["ended_at"]),
                    "description": f"cluster: {info['cluster'] or 'embedded default'}",
                },
            )
        )
        # The clusters config is what provtask was run with: the validator of profile 0.5
        # allows only ControlActions as the object, so it is a second instrument.
        organize["instrument"] = [self.engine, *self._clusters_config(info)]
        organize["result"] = run
        organize["object"] = controls
        self.counts["runs"] += 1

    def _clusters_config(self, info: dict[str, Any]) -> list[Any]:
        """The resolved clusters config the run used, as a file of the crate."""
        context = info["context"]
        if context is None or context["clusters_config"] is None:
            return []
        hash_ = context["clusters_hash"]
        path = self.scratch / f"clusters-{hash_}.yaml"
        path.write_text(context["clusters_config"])
        return [
            self._add(f"config/clusters-{hash_[:12]}.yaml", {})
            if f"config/clusters-{hash_[:12]}.yaml" in self.crate
            else self.crate.add_file(
                path,
                dest_path=f"config/clusters-{hash_[:12]}.yaml",
                properties={
                    "@type": ["File", "SoftwareSourceCode"],
                    "name": "provtask clusters configuration (resolved)",
                    "description": f"from {context['clusters_origin']}",
                    "encodingFormat": "application/yaml",
                    "sha256": hash_,
                },
            )
        ]

    def attempt(
        self, run_id: str, task: Any, row: Any, tool: ContextEntity, jobs: dict[str, dict]
    ) -> ContextEntity:
        """The CreateAction of one attempt: inputs, output, times, status, error, usage."""
        crate = self.crate
        ok = row.status == "success"
        properties: dict[str, Any] = {
            "@type": "CreateAction",
            "name": f"{task.task_id} attempt {row.attempt} in run {run_id}",
            "actionStatus": _STATUS[ok],
            "startTime": _iso(row.started_at),
            "endTime": _iso(row.ended_at),
            "identifier": row.key,
            "description": f"partition {_text(row.partition)}, node {_text(row.node)}, "
            f"worker {_text(row.worker)}",
        }
        if not ok:
            properties["error"] = (
                f"{row.exc_type}: {row.exc_message}"
                if isinstance(row.exc_type, str)
                else f"attempt ended as {row.status}"
            )
        objects = [
            self.input_value(run_id, task, entry) for entry in json.loads(task.inputs or "[]")
        ]
        results = (
            [self.artifact(row.output_hash, self.slot(task.name, "result", "output"))]
            if ok and isinstance(row.output_hash, str)
            else []
        )
        action = crate.add_action(
            tool,
            identifier=f"#attempt/{run_id}/{task.task_id}/{row.attempt}",
            object=objects,
            result=results,
            properties=properties,
        )
        action["resourceUsage"] = self.usage(action.id, row, jobs.get(str(row.batch_job_id)))
        self.counts["attempts"] += 1
        return action

    def usage(self, base: str, row: Any, job: dict | None) -> list[ContextEntity]:
        import pandas as pd

        resources = json.loads(row.resources) if isinstance(row.resources, str) else {}
        measured: list[tuple[str, Any, str | None]] = [
            ("wallTime", _seconds(row.ended_at - row.started_at), SECONDS),
            ("cpuTime", _seconds(row.cpu_time), SECONDS),
            ("peakRSS", row.peak_rss, BYTES),
            ("ranks", row.mpi_ranks, COUNT),
            ("nodes", row.mpi_nodes, COUNT),
            ("gpus", resources.get("gpus"), COUNT),
            ("mpiWallTime", _seconds(row.mpi_wall_time), SECONDS),
            ("batchJobId", row.batch_job_id, None),
        ]
        if job is not None:
            measured += [
                ("batchJobMaxRSS", job.get("max_rss"), BYTES),
                ("batchJobElapsed", _seconds(job.get("elapsed")), SECONDS),
            ]
        entities = []
        for name, value, unit in measured:
            if value is None or (not isinstance(value, str) and pd.isna(value)):
                continue
            if hasattr(value, "item"):
                value = value.item()
            properties = {
                "@type": "PropertyValue",
                "name": name,
                "propertyID": name,
                "value": value,
            }
            if unit:
                properties["unitCode"] = unit
            entities.append(self._add(f"{base}/usage/{name}", properties))
        return entities

    def _accounting(self, run_id: str) -> dict[str, dict]:
        """sacct's record of each batch job of the run, by job id; empty without SLURM."""
        if not self.accounting or self.store.jobs(run_id).empty:
            return {}
        from ..analysis.sacct import job_accounting

        try:
            table = job_accounting(self.store, run_id)
        except AccountingError:
            return {}
        known = table[table["state"].notna()]
        return {str(job["job_id"]): job for job in known.to_dict("records")}

    def param_value(self, run_id: str, name: str, value: Any) -> ContextEntity:
        entity = self._add(
            f"#run/{run_id}/param/{name}",
            {"@type": "PropertyValue", "name": name, "value": _literal(value)},
        )
        slot = self.params.get(name)
        if slot is not None:
            entity["exampleOfWork"] = slot
            slot.append_to("workExample", entity)
        return entity

    def input_value(self, run_id: str, task: Any, entry: dict[str, Any]) -> Any:
        """What an input was: an upstream task's output, a run param, or a literal."""
        slot = self.slot(task.name, entry["name"], "input")
        if "task" in entry and "item" not in entry:
            value = self.artifact(entry["hash"], None)
        elif "param" in entry:
            value = self.crate.get(f"#run/{run_id}/param/{entry['param']}")
        else:
            described = entry.get("repr") or f"element {entry['item']} of {entry['task']}'s output"
            value = self._add(
                f"#value/{entry['hash']}",
                {
                    "@type": "PropertyValue",
                    "name": entry["name"],
                    "value": described,
                    "identifier": f"provtask-value-hash:{entry['hash']}",
                },
            )
        if value is not None:
            value.append_to("exampleOfWork", slot)
            slot.append_to("workExample", value)
        return value

    def artifact(self, hash_: str, slot: ContextEntity | None) -> Any:
        """An output value: a File of its artifact's bytes if small enough, else a
        PropertyValue naming its hash; a Path value also references the file with its hash."""
        entity = self.values.get(hash_)
        if entity is None:
            entity = self._new_artifact(hash_)
            self.values[hash_] = entity
        if slot is not None:
            entity.append_to("exampleOfWork", slot)
            slot.append_to("workExample", entity)
        return entity

    def _new_artifact(self, hash_: str) -> Any:
        row = self.store.conn.execute(
            "SELECT size, serializer, type, preview FROM artifacts WHERE hash = ?", (hash_,)
        ).fetchone()
        size, serializer, kind, preview = row if row else (None, None, None, None)
        common = {
            "identifier": f"blake2b-256:{hash_}",
            "description": preview,
            "additionalType": kind,
            "contentSize": str(size) if size is not None else None,
        }
        if row is not None and size <= self.inline_limit:
            scratch = self.scratch / hash_
            scratch.write_bytes(_bytes(self.store, hash_))
            self.counts["inlined"] += 1
            entity = self.crate.add_file(
                scratch,
                dest_path=f"artifacts/{hash_}.{serializer}",
                properties={
                    **common,
                    "name": f"artifact {hash_[:12]}",
                    "encodingFormat": "application/x-python-pickle",
                },
            )
        else:
            entity = self._add(
                f"#artifact/{hash_}",
                {
                    "@type": "PropertyValue",
                    "name": f"artifact {hash_[:12]}",
                    "value": preview,
                    **common,
                },
            )
        if kind in ("pathlib.PosixPath", "pathlib.WindowsPath", "pathlib.Path") and preview:
            self._referenced_file(entity, hash_)
        return entity

    def _referenced_file(self, entity: Any, hash_: str) -> None:
        """A Path value: the file it names, with its SHA-256 as found at export."""
        from ..store.artifacts import load_verified

        path = Path(load_verified(_bytes(self.store, hash_), hash_))
        properties: dict[str, Any] = {"@type": "File", "name": path.name}
        if path.is_file():
            data = path.read_bytes()
            properties |= {"sha256": _sha256(data), "contentSize": str(len(data))}
        else:
            properties["description"] = "the file was not there when the crate was written"
        file = self._add(path.absolute().as_uri(), properties)
        self.crate.root_dataset.append_to("hasPart", file)
        entity["about"] = file

    def _sinks(self, tasks: pd.DataFrame) -> list[Any]:
        """The outputs of the tasks nothing downstream consumed: the run's results."""
        consumed = {
            entry.get("task") for inputs in tasks["inputs"].dropna() for entry in json.loads(inputs)
        }
        sinks = tasks[(tasks["kind"] == "call") & ~tasks["task_id"].isin(consumed)]
        return [self.values[h] for h in sinks["output_hash"].dropna() if h in self.values]

    def _agent(self, info: dict[str, Any]) -> ContextEntity:
        return self._add(
            f"#user/{info['user']}@{info['host']}",
            {"@type": "Person", "name": f"{info['user']} on {info['host']}"},
        )

    def _add(self, identifier: str, properties: dict[str, Any]) -> ContextEntity:
        from rocrate.model.contextentity import ContextEntity

        if identifier in self.crate:  # (a missed crate.get scans every entity)
            return self.crate.get(identifier)
        clean = {k: v for k, v in properties.items() if v is not None}
        return self.crate.add(ContextEntity(self.crate, identifier, clean))


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


def _bytes(store: Store, hash_: str) -> bytes:
    path, data = store.conn.execute(
        "SELECT path, data FROM artifacts WHERE hash = ?", (hash_,)
    ).fetchone()
    return data if data is not None else store.files.read(path)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "-"


def _literal(value: Any) -> Any:
    return value if isinstance(value, bool | int | float | str) else json.dumps(value)


def _iso(value: Any) -> str | None:
    import pandas as pd

    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, timezone.utc).isoformat()
    return pd.Timestamp(value).isoformat()


def _seconds(value: Any) -> float | None:
    import pandas as pd

    if value is None or pd.isna(value):
        return None
    return value.total_seconds() if isinstance(value, pd.Timedelta) else float(value)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
