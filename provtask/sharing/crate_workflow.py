"""The prospective part of a crate: the DAG file, a tool per task definition, a step per
DAG node, a formal parameter per DAG param and per tool input and output."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .crate_common import sha256

if TYPE_CHECKING:
    from rocrate.model.contextentity import ContextEntity
    from rocrate.rocrate import ROCrate

PROFILE_VERSION = "0.5"
PROFILES = {
    "Process Run Crate": f"https://w3id.org/ro/wfrun/process/{PROFILE_VERSION}",
    "Workflow Run Crate": f"https://w3id.org/ro/wfrun/workflow/{PROFILE_VERSION}",
    "Provenance Run Crate": f"https://w3id.org/ro/wfrun/provenance/{PROFILE_VERSION}",
    "Workflow RO-Crate": "https://w3id.org/workflowhub/workflow-ro-crate/1.0",
}
WFRUN_CONTEXT = "https://w3id.org/ro/terms/workflow-run/context"
PYTHON = "https://w3id.org/workflowhub/workflow-ro-crate#python"
_PARAM_TYPES = {bool: "Boolean", int: "Integer", float: "Float", str: "Text"}


class Workflow:
    """The DAG of the crate's runs, its tools and steps, each added once."""

    def __init__(self, crate: ROCrate, scratch: Path, counts: dict[str, int]) -> None:
        self.crate, self.scratch, self.counts = crate, scratch, counts
        self.dag: Any = None
        self.engine: ContextEntity | None = None
        self.tools: dict[str, ContextEntity] = {}
        self.steps: dict[str, ContextEntity] = {}
        self.params: dict[str, ContextEntity] = {}
        self.slots: dict[str, ContextEntity] = {}  # FormalParameter per tool input / output

    def describe(self, info: dict[str, Any], license: str | None) -> None:
        """The root dataset, the profiles it conforms to, the DAG and its params."""
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
        if info["dag_file_hash"] and sha256(data) != info["dag_file_hash"]:
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
