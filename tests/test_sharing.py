"""Sharing a real run on the local SLURM: its RO-Crate, PROV-JSON and archive.

One run of tests/dags/shared_run.py (a ``.map`` on the gpu partition with a failing element,
an MPI task on the cpu partition, a file read through a ``Path``) is exported, and each
export is read back and compared with the store.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas.testing as pdt
import pytest
from slurm import require_slurm, wait_until_gone

import provtask
from provtask import Store
from provtask.sharing.prov_export import export_prov
from provtask.sharing.rocrate_export import PROFILES, export_rocrate

DAGS = Path(__file__).parent / "dags"
pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    require_slurm()
    root = tmp_path_factory.mktemp("shared")
    (root / "data.txt").write_text("measured input\n")
    lines = ["default: cpu", "partitions:"]
    for name, cores in (("cpu", 2), ("gpu", 1)):  # cpu: room for a 2-rank MPI task
        lines += [
            f"  {name}:",
            "    scheduler: slurm",
            f"    queue: {name}",
            f"    cores: {cores}",
            "    memory: 1GB",
            '    walltime: "00:10:00"',
            "    max-jobs: 1",
            "    idle-timeout: 5s",
            f"    log-directory: {root / 'logs'}",
        ]
    lines.append("    gpus-per-node: 2")
    (root / "clusters.yaml").write_text("\n".join(lines) + "\n")
    params = {"data": str(root / "data.txt"), "folder": str(root)}
    dag = provtask.load_dag_file(DAGS / "shared_run.py")
    result = dag.run(params=params, store=root / "store", clusters=root / "clusters.yaml")
    store = Store(root / "store")
    assert wait_until_gone(set(store.jobs(result.run_id)["job_id"].dropna())) == set()
    return {"root": root, "run_id": result.run_id, "store": store, "params": params, "dag": dag}


def test_the_run_has_what_the_crate_must_show(shared):
    attempts = shared["store"].attempts(shared["run_id"]).set_index("task_id")
    assert attempts.loc["square[2]", "status"] == "failed"
    assert attempts.loc["count_ranks", "mpi_ranks"] == 2
    assert set(attempts["partition"]) == {"cpu", "gpu"}


# -- RO-Crate -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def crate(shared) -> dict[str, Any]:
    from rocrate.rocrate import ROCrate

    folder = shared["root"] / "crate"
    counts = export_rocrate(shared["store"], [shared["run_id"]], folder, inline_limit=1024)
    loaded = ROCrate(folder)  # reads back with ro-crate-py
    graph = {e.id: e.properties() for e in loaded.get_entities()}
    return {"folder": folder, "counts": counts, "graph": graph, "crate": loaded}


def ids(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [] if value is None else [value]
    return [v["@id"] for v in values]


def types(entity: dict) -> set[str]:
    kind = entity["@type"]
    return set(kind if isinstance(kind, list) else [kind])


def of_type(graph: dict, kind: str) -> dict[str, dict]:
    return {i: e for i, e in graph.items() if kind in types(e)}


def refs_are(graph: dict, value: Any, allowed: set[str]) -> bool:
    return bool(ids(value)) and all(types(graph[i]) & allowed for i in ids(value))


TOOLS = {"SoftwareApplication", "SoftwareSourceCode", "ComputationalWorkflow"}
RUNS = {"CreateAction", "ActivateAction", "UpdateAction"}
VALUES = {"File", "Dataset", "Collection", "PropertyValue"}


# The MUSTs of Provenance Run Crate 0.5 and of the profiles it extends (Workflow Run Crate
# 0.5, Process Run Crate 0.5, Workflow RO-Crate 1.0), from
# https://www.researchobject.org/workflow-run-crate/profiles/0.5/ — one check each.
def root(graph: dict) -> dict:
    return graph["./"]


def main_entity(graph: dict) -> dict:
    return graph[root(graph)["mainEntity"]["@id"]]


REQUIREMENTS = {
    "process: the root conformsTo the Process Run Crate 0.5 permalink": lambda g: (
        PROFILES["Process Run Crate"] in ids(root(g)["conformsTo"])
    ),
    "workflow run: the root conformsTo the Workflow Run Crate 0.5 permalink": lambda g: (
        PROFILES["Workflow Run Crate"] in ids(root(g)["conformsTo"])
    ),
    "provenance: the root conformsTo the Provenance Run Crate 0.5 permalink": lambda g: (
        PROFILES["Provenance Run Crate"] in ids(root(g)["conformsTo"])
    ),
    "the conformsTo profiles are CreativeWork entities": lambda g: all(
        "CreativeWork" in types(g[i]) for i in ids(root(g)["conformsTo"])
    ),
    "workflow ro-crate: the root has a mainEntity": lambda g: "mainEntity" in root(g),
    "workflow ro-crate: the root has a license": lambda g: bool(root(g).get("license")),
    "workflow ro-crate: mainEntity is File, SoftwareSourceCode, ComputationalWorkflow": (
        lambda g: {"File", "SoftwareSourceCode", "ComputationalWorkflow"} <= types(main_entity(g))
    ),
    "workflow ro-crate: mainEntity names a ComputerLanguage via programmingLanguage": (
        lambda g: refs_are(g, main_entity(g)["programmingLanguage"], {"ComputerLanguage"})
    ),
    "process: every CreateAction has an instrument that is a tool": lambda g: all(
        refs_are(g, a.get("instrument"), TOOLS) for a in of_type(g, "CreateAction").values()
    ),
    "workflow run: the workflow's input and output are FormalParameters": lambda g: all(
        refs_are(g, main_entity(g).get(p), {"FormalParameter"})
        for p in ("input", "output")
        if p in main_entity(g)
    ),
    "workflow run: every FormalParameter has an additionalType": lambda g: all(
        p.get("additionalType") for p in of_type(g, "FormalParameter").values()
    ),
    "workflow run: every FormalParameter has a workExample value": lambda g: all(
        refs_are(g, p.get("workExample"), VALUES) for p in of_type(g, "FormalParameter").values()
    ),
    "workflow run: some action has the mainEntity as instrument": lambda g: any(
        root(g)["mainEntity"]["@id"] in ids(a.get("instrument"))
        for a in of_type(g, "CreateAction").values()
    ),
    "provenance: the workflow refers to its tools via hasPart": lambda g: refs_are(
        g, main_entity(g).get("hasPart"), TOOLS
    ),
    "provenance: tool input and output are FormalParameters": lambda g: all(
        refs_are(g, t.get(p), {"FormalParameter"})
        for t in of_type(g, "SoftwareApplication").values()
        for p in ("input", "output")
        if p in t
    ),
    "provenance: every tool is the instrument of some action": lambda g: all(
        any(i in ids(a.get("instrument")) for a in of_type(g, "CreateAction").values())
        for i in ids(main_entity(g)["hasPart"])
    ),
    "provenance: a workflow with steps is a HowTo": lambda g: "HowTo" in types(main_entity(g)),
    "provenance: every HowToStep is a step of the workflow": lambda g: (
        set(of_type(g, "HowToStep")) <= set(ids(main_entity(g).get("step")))
    ),
    "provenance: every HowToStep names its tool via workExample": lambda g: all(
        refs_are(g, s.get("workExample"), TOOLS) for s in of_type(g, "HowToStep").values()
    ),
    "provenance: a HowToStep position is an integer": lambda g: all(
        isinstance(s.get("position", 0), int) for s in of_type(g, "HowToStep").values()
    ),
    "provenance: a ControlAction's instrument is a HowToStep": lambda g: all(
        refs_are(g, c.get("instrument"), {"HowToStep"})
        for c in of_type(g, "ControlAction").values()
    ),
    "provenance: a ControlAction's object is the tool run": lambda g: all(
        refs_are(g, c.get("object"), RUNS) for c in of_type(g, "ControlAction").values()
    ),
    "provenance: an OrganizeAction's instrument is the engine": lambda g: all(
        refs_are(g, o.get("instrument"), TOOLS) for o in of_type(g, "OrganizeAction").values()
    ),
    "provenance: an OrganizeAction's result is the workflow run": lambda g: all(
        refs_are(g, o.get("result"), RUNS) for o in of_type(g, "OrganizeAction").values()
    ),
    "provenance: an OrganizeAction's object is the ControlActions": lambda g: all(
        refs_are(g, o.get("object"), {"ControlAction"})
        for o in of_type(g, "OrganizeAction").values()
    ),
    "provenance: resourceUsage points to PropertyValues with a propertyID": lambda g: all(
        refs_are(g, a["resourceUsage"], {"PropertyValue"})
        and all(g[i].get("propertyID") for i in ids(a["resourceUsage"]))
        for a in of_type(g, "CreateAction").values()
        if "resourceUsage" in a
    ),
}


@pytest.mark.parametrize("requirement", list(REQUIREMENTS))
def test_the_crate_meets_each_requirement_of_the_profile(crate, requirement):
    assert REQUIREMENTS[requirement](crate["graph"]), requirement


def test_the_crate_has_the_entities_of_the_run(crate, shared):
    graph = crate["graph"]
    assert {"CreateAction", "ControlAction", "OrganizeAction", "HowToStep"} <= {
        t for e in graph.values() for t in types(e)
    }
    tools = {e["name"] for e in of_type(graph, "SoftwareApplication").values()}
    assert {"make_inputs", "square", "count_ranks", "measure", "write_report"} <= tools
    steps = {e["name"] for e in of_type(graph, "HowToStep").values()}
    assert "square" in steps and "square[0]" not in steps  # one step per DAG node
    params = {e["name"] for e in of_type(graph, "FormalParameter").values()}
    assert {"n", "data", "folder"} <= params
    values = {e["name"]: e["value"] for i, e in graph.items() if "/param/" in i}
    assert values == {"n": 4, **shared["params"]}
    # The clusters config the run resolved is a file of the crate.
    organize = next(iter(of_type(graph, "OrganizeAction").values()))
    config = [i for i in ids(organize["instrument"]) if i.startswith("config/")]
    assert "partitions:" in (crate["folder"] / config[0]).read_text()
    assert (crate["folder"] / main_entity(graph)["@id"]).read_text() == (
        DAGS / "shared_run.py"
    ).read_text()


def test_the_crates_actions_are_the_stores_attempts_one_to_one(crate, shared):
    graph = crate["graph"]
    run_id = shared["run_id"]
    attempts = shared["store"].attempts(run_id)
    expected = {f"#attempt/{run_id}/{r.task_id}/{r.attempt}": r for r in attempts.itertuples()}
    actions = {i: a for i, a in of_type(graph, "CreateAction").items() if i.startswith("#attempt/")}
    assert set(actions) == set(expected)
    for action_id, row in expected.items():
        action = actions[action_id]
        ok = row.status == "success"
        assert action["actionStatus"].endswith(
            "CompletedActionStatus" if ok else "FailedActionStatus"
        )
        assert action["startTime"] == row.started_at.isoformat()
        usage = {graph[i]["propertyID"]: graph[i] for i in ids(action["resourceUsage"])}
        assert usage["batchJobId"]["value"] == row.batch_job_id
        assert usage["peakRSS"]["value"] == row.peak_rss and usage["peakRSS"]["unitCode"] == "AD"
        assert usage["wallTime"]["unitCode"] == "SEC"
    failed = actions[f"#attempt/{run_id}/square[2]/1"]
    assert failed["error"] == "builtins.ValueError: element 2 is refused" and "result" not in failed
    mpi = actions[f"#attempt/{run_id}/count_ranks/1"]
    usage = {graph[i]["propertyID"]: graph[i]["value"] for i in ids(mpi["resourceUsage"])}
    assert usage["ranks"] == 2 and usage["nodes"] == 1
    assert "batchJobMaxRSS" in usage and "batchJobElapsed" in usage  # from sacct
    # Each ControlAction holds the attempts of one task.
    controls = of_type(graph, "ControlAction")
    held = [i for c in controls.values() for i in ids(c["object"])]
    assert sorted(held) == sorted(expected)


def test_values_link_one_task_to_the_next_and_files_carry_their_hash(crate, shared):
    graph, run_id = crate["graph"], shared["run_id"]
    store = shared["store"]
    locate = graph[f"#attempt/{run_id}/locate/1"]
    measure = graph[f"#attempt/{run_id}/measure/1"]
    assert ids(locate["result"]) == ids(measure["object"])  # the same value entity
    value = graph[ids(locate["result"])[0]]
    # Small artifacts are files of the crate holding the artifact's bytes.
    path = crate["folder"] / value["@id"]
    output_hash = store.tasks(run_id).set_index("task_id").loc["locate", "output_hash"]
    assert value["identifier"] == f"blake2b-256:{output_hash}"
    assert store.load_artifact(output_hash) == Path(shared["params"]["data"])
    from provtask.store.artifacts import digest

    assert digest(path.read_bytes()) == output_hash
    # The file the Path names is referenced with its SHA-256.
    data = graph[value["about"]["@id"]]
    import hashlib

    expected = hashlib.sha256(Path(shared["params"]["data"]).read_bytes()).hexdigest()
    assert data["sha256"] == expected and data["@id"].startswith("file://")


def test_large_values_are_referenced_by_hash_without_their_bytes(shared, tmp_path):
    export_rocrate(shared["store"], [shared["run_id"]], tmp_path / "crate")  # no inlining
    metadata = json.loads((tmp_path / "crate" / "ro-crate-metadata.json").read_text())
    artifacts = [e for e in metadata["@graph"] if e["@id"].startswith("#artifact/")]
    assert artifacts and all(e["identifier"].startswith("blake2b-256:") for e in artifacts)
    assert not (tmp_path / "crate" / "artifacts").exists()


# rdflib, inside the validator, warns about its own deprecated classes.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_profile_validator_accepts_the_crate(crate, tmp_path):
    from rocrate_validator import services

    checked = with_local_context(crate["folder"], tmp_path / "crate")
    result = services.validate(
        {
            "rocrate_uri": str(checked),
            "profile_identifier": "provenance-run-crate-0.5",
            "requirement_severity": "REQUIRED",
            "offline": True,
            "skip_availability_check": True,
        }
    )
    issues = [f"{i.check.identifier} {i.check.name}: {i.message}" for i in result.get_issues()]
    assert result.passed(), "\n".join(issues)
    assert not result.get_issues()


def with_local_context(crate: Path, copy: Path) -> Path:
    """A copy of the crate whose JSON-LD context is inline: this machine cannot fetch
    w3id.org, so the validator gets the RO-Crate context shipped with ro-crate-py (1.3) with
    the four bioschemas terms mapped as RO-Crate 1.1 maps them, and the workflow-run terms."""
    import rocrate

    shipped = Path(rocrate.__file__).parent / "data" / "ro-crate.jsonld"
    context = json.loads(shipped.read_text())["@context"]
    context |= {
        "ComputationalWorkflow": "https://bioschemas.org/ComputationalWorkflow",
        "FormalParameter": "https://bioschemas.org/FormalParameter",
        "input": "https://bioschemas.org/ComputationalWorkflow#input",
        "output": "https://bioschemas.org/ComputationalWorkflow#output",
    }
    for term in ("resourceUsage", "ParameterConnection", "connection", "sourceParameter"):
        context[term] = f"https://w3id.org/ro/terms/workflow-run#{term}"
    shutil.copytree(crate, copy)
    metadata = json.loads((copy / "ro-crate-metadata.json").read_text())
    assert metadata["@context"] == [
        "https://w3id.org/ro/crate/1.1/context",
        "https://w3id.org/ro/terms/workflow-run/context",
    ]
    metadata["@context"] = context
    (copy / "ro-crate-metadata.json").write_text(json.dumps(metadata))
    return copy


def test_a_zipped_crate_from_the_command_line_loads_back(shared, tmp_path):
    from rocrate.rocrate import ROCrate

    target = tmp_path / "run.crate.zip"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "provtask.cli",
            "export",
            shared["run_id"],
            "--ro-crate",
            str(target),
            "--store",
            str(shared["root"] / "store"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Provenance Run Crate 0.5" in done.stdout
    loaded = ROCrate(target)
    assert len(loaded.get_by_type("CreateAction")) == 1 + len(
        shared["store"].attempts(shared["run_id"])
    )


# -- PROV-JSON ------------------------------------------------------------------------------
def test_prov_json_has_an_activity_per_attempt_and_the_lineage(shared, tmp_path):
    from prov.model import ProvDocument

    run_id = shared["run_id"]
    export_prov(shared["store"], run_id, tmp_path / "run.json")
    document = ProvDocument.deserialize(str(tmp_path / "run.json"), format="json")
    records = json.loads((tmp_path / "run.json").read_text())
    attempts = shared["store"].attempts(run_id)
    activities = {k for k in records["activity"] if k.startswith("provtask:attempt/")}
    assert activities == {
        f"provtask:attempt/{run_id}/{r.task_id}/{r.attempt}" for r in attempts.itertuples()
    }
    tasks = shared["store"].tasks(run_id).set_index("task_id")
    generated = {(g["prov:entity"], g["prov:activity"]) for g in records["wasGeneratedBy"].values()}
    output = tasks.loc["locate", "output_hash"]
    assert (f"provtask:value/{output}", f"provtask:attempt/{run_id}/locate/1") in generated
    used = {(u["prov:activity"], u["prov:entity"]) for u in records["used"].values()}
    assert (f"provtask:attempt/{run_id}/measure/1", f"provtask:value/{output}") in used
    assert len(document.records) > len(activities)


# -- archive --------------------------------------------------------------------------------
def test_an_imported_archive_gives_the_same_frames_and_a_rerun_is_cached(shared, tmp_path, client):
    from provtask.sharing.archive import export_archive
    from provtask.store.archive import import_archive

    run_id, source = shared["run_id"], shared["store"]
    export_archive(source, [run_id], tmp_path / "run.zip")
    target = Store(tmp_path / "colleague")
    summary = import_archive(target, tmp_path / "run.zip")
    assert summary.runs == [run_id]
    for table in ("tasks", "attempts", "workers", "jobs", "edges", "artifacts"):
        pdt.assert_frame_equal(getattr(target, table)(run_id), getattr(source, table)(run_id))
    runs = source.runs()
    pdt.assert_frame_equal(target.runs(), runs[runs["run_id"] == run_id].reset_index(drop=True))
    assert target.run_context(run_id) == source.run_context(run_id)
    assert target.output(run_id, "make_inputs") == [0, 1, 2, 3]  # read through the hash check

    rerun = shared["dag"].run(params=shared["params"], store=target.root, client=client)
    tasks = target.tasks(rerun.run_id).set_index("task_id")
    succeeded = source.tasks(run_id).query("state == 'success' and kind != 'map'")["task_id"]
    assert set(tasks.loc[succeeded, "cache"]) == {"hit"}
    assert set(tasks.loc[succeeded, "source_run"]) == {run_id}
    # Only the element that failed ran again (and failed again).
    assert list(target.attempts(rerun.run_id)["task_id"]) == ["square[2]"]
