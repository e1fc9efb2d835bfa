"""The retrospective part of a crate: per run a CreateAction and an OrganizeAction, per task
a ControlAction, per attempt a CreateAction with its inputs, output and resource usage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import AccountingError
from .crate_common import STATUS, add_entity, iso, or_dash, seconds

if TYPE_CHECKING:
    import pandas as pd
    from rocrate.model.contextentity import ContextEntity
    from rocrate.rocrate import ROCrate

    from ..store import Store
    from .crate_values import Values
    from .crate_workflow import Workflow

# UN/CEFACT common codes, as schema.org's unitCode expects.
SECONDS, BYTES, COUNT = "SEC", "AD", "C62"


class Runs:
    """Adds runs of the crate's DAG, their tasks and attempts."""

    def __init__(
        self,
        store: Store,
        crate: ROCrate,
        workflow: Workflow,
        values: Values,
        scratch: Path,
        accounting: bool,
        counts: dict[str, int],
    ) -> None:
        self.store, self.crate, self.workflow, self.values = store, crate, workflow, values
        self.scratch, self.accounting, self.counts = scratch, accounting, counts

    def add(self, info: dict[str, Any]) -> None:
        """A run: its actions, its tasks' control actions, its attempts."""
        from rocrate.model.contextentity import ContextEntity

        crate, run_id = self.crate, info["run_id"]
        tasks = self.store.tasks(run_id)
        attempts = self.store.attempts(run_id)
        jobs = self._accounting(run_id)
        inputs = [
            self.values.param_value(run_id, name, value) for name, value in info["params"].items()
        ]
        run = crate.add_action(
            self.workflow.dag,
            identifier=f"#run/{run_id}",
            object=inputs,
            properties={
                "@type": "CreateAction",
                "name": f"Run {run_id} of DAG {info['dag_name']}",
                "startTime": iso(info["started_at"]),
                "endTime": iso(info["ended_at"]),
                "actionStatus": STATUS[info["status"] == "success"],
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
            tool = self.workflow.tool(task)
            step = self.workflow.step(nodes[node], tool, positions[node])
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
                        "actionStatus": STATUS[task.state == "success"],
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
                    "startTime": iso(info["started_at"]),
                    "endTime": iso(info["ended_at"]),
                    "description": f"cluster: {info['cluster'] or 'embedded default'}",
                },
            )
        )
        # The clusters config is what provtask was run with: the validator of profile 0.5
        # allows only ControlActions as the object, so it is a second instrument.
        organize["instrument"] = [self.workflow.engine, *self._clusters_config(info)]
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
            "actionStatus": STATUS[ok],
            "startTime": iso(row.started_at),
            "endTime": iso(row.ended_at),
            "identifier": row.key,
            "description": f"partition {or_dash(row.partition)}, node {or_dash(row.node)}, "
            f"worker {or_dash(row.worker)}",
        }
        if not ok:
            properties["error"] = (
                f"{row.exc_type}: {row.exc_message}"
                if isinstance(row.exc_type, str)
                else f"attempt ended as {row.status}"
            )
        objects = [
            self.values.input_value(run_id, task, entry)
            for entry in json.loads(task.inputs or "[]")
        ]
        results = (
            [
                self.values.artifact(
                    row.output_hash, self.workflow.slot(task.name, "result", "output")
                )
            ]
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
            ("wallTime", seconds(row.ended_at - row.started_at), SECONDS),
            ("cpuTime", seconds(row.cpu_time), SECONDS),
            ("peakRSS", row.peak_rss, BYTES),
            ("ranks", row.mpi_ranks, COUNT),
            ("nodes", row.mpi_nodes, COUNT),
            ("gpus", resources.get("gpus"), COUNT),
            ("mpiWallTime", seconds(row.mpi_wall_time), SECONDS),
            ("batchJobId", row.batch_job_id, None),
        ]
        if job is not None:
            measured += [
                ("batchJobMaxRSS", job.get("max_rss"), BYTES),
                ("batchJobElapsed", seconds(job.get("elapsed")), SECONDS),
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

    def _sinks(self, tasks: pd.DataFrame) -> list[Any]:
        """The outputs of the tasks nothing downstream consumed: the run's results."""
        consumed = {
            entry.get("task") for inputs in tasks["inputs"].dropna() for entry in json.loads(inputs)
        }
        sinks = tasks[(tasks["kind"] == "call") & ~tasks["task_id"].isin(consumed)]
        by_hash = self.values.by_hash
        return [by_hash[h] for h in sinks["output_hash"].dropna() if h in by_hash]

    def _agent(self, info: dict[str, Any]) -> ContextEntity:
        return self._add(
            f"#user/{info['user']}@{info['host']}",
            {"@type": "Person", "name": f"{info['user']} on {info['host']}"},
        )

    def _add(self, identifier: str, properties: dict[str, Any]) -> ContextEntity:
        return add_entity(self.crate, identifier, properties)
