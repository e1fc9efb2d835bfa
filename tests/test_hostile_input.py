"""Hostile or careless input: CLI filters and patterns are literal values (never SQL text),
run and artifact ids used as paths cannot leave the store, and many broken clusters files and
DAG files each give one clean provtask error, with nothing submitted."""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from slurm import require_slurm, slurm_problem

from provtask import DAG, Store, load_dag_file, task
from provtask.cli import main
from provtask.clusters.config import load_clusters
from provtask.errors import ConfigError, DAGFileError, NotFoundError, StoreError
from provtask.store.artifacts import ArtifactFiles
from provtask.store.doctor import check_store

DAG_NAME = 'o\'brien; DROP TABLE runs; -- 100% _x_ é漢 "q"'
HOSTILE = [
    "' OR '1'='1",
    "x'; DROP TABLE tasks; --",
    '"; DELETE FROM runs; --',
    "%",
    "_",
    "a%",
    "a_b%",
    "é漢字 🚀",
    "\\",
    "*",
]


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def store(client, tmp_path_factory) -> Store:
    """One run of a DAG with a hostile name, and tasks whose names differ only where SQL
    LIKE would see a wildcard."""

    @task
    def a_b() -> int:
        return 1

    @task
    def aXb() -> int:  # what a_b would match if '_' were a wildcard
        return 2

    with DAG(DAG_NAME) as dag:
        a_b()
        aXb()
    root = tmp_path_factory.mktemp("hostile") / "store"
    assert dag.run(client=client, store=root).ok
    return Store(root)


def row_counts(store: Store) -> dict[str, int]:
    tables = ("runs", "tasks", "attempts", "artifacts", "edges")
    return {t: store.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


# -- filters are values ------------------------------------------------------------------------
def test_a_dag_name_full_of_sql_is_matched_exactly(store):
    listed = cli("runs", "--dag", DAG_NAME, "--json", "--store", str(store.root))
    assert [r["dag_name"] for r in json.loads(listed.output)] == [DAG_NAME]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_filters_match_nothing_and_change_nothing(store, value):
    before = row_counts(store)
    root = str(store.root)

    runs = cli("runs", "--dag", value, "--json", "--store", root)
    assert runs.exit_code == 0 and json.loads(runs.output) == []
    for command in (
        ["show", value],
        ["why", "latest", value],
        ["lineage", "latest", value],
        ["tasks", "latest", "--name", value, "--json"],
        ["logs", "latest", value],
    ):
        answer = cli(*command, "--store", root)
        assert answer.exit_code == 1 and answer.output.startswith("Error: ")
        assert " no " in answer.output  # names what it did not find
        assert answer.exception is None or isinstance(answer.exception, SystemExit)
    assert row_counts(store) == before


def test_underscore_and_percent_are_literal_in_names_and_patterns(client, store):
    named = cli("tasks", "latest", "--name", "a_b", "--json", "--store", str(store.root))
    assert [t["task_id"] for t in json.loads(named.output)] == ["a_b"]

    rerun = _rerun(client, store, refresh=["a_b"])
    assert rerun == {"a_b": "success", "aXb": "cached"}  # '_' is no wildcard
    assert _rerun(client, store, refresh=["a%"]) == {"a_b": "cached", "aXb": "cached"}


def _rerun(client: object, store: Store, refresh: list[str]) -> dict[str, str]:
    """The fixture's DAG again, with ``refresh`` patterns; the state of each task."""

    @task
    def a_b() -> int:
        return 1

    @task
    def aXb() -> int:
        return 2

    with DAG(DAG_NAME) as dag:
        a_b()
        aXb()
    result = dag.run(client=client, store=store.root, refresh=refresh)
    return {task_id: state.value for task_id, state in result.states.items()}


# -- ids used as paths -------------------------------------------------------------------------
ESCAPES = ["../provtask.db", "/etc/passwd", "artifacts/../provtask.db", "a" * 63 + "\0"]


@pytest.mark.parametrize("bad", ESCAPES)
def test_artifact_ids_cannot_leave_the_store(store, bad):
    with pytest.raises(NotFoundError, match="is not an artifact hash"):
        store.load_artifact(bad)
    with pytest.raises(StoreError):
        ArtifactFiles(store.root).read(bad)


def test_a_forged_artifact_path_is_refused_and_reported(store, tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"not yours")
    forged = "f" * 64
    store.conn.execute(
        "INSERT INTO artifacts (hash, size, path) VALUES (?, 9, ?)",
        (forged, f"artifacts/../../{secret}"),
    )
    try:
        with pytest.raises(StoreError, match="points outside the store"):
            store.load_artifact(forged)
        problems = {p.kind: p for p in check_store(store.root).problems}
        assert problems["artifact path"].subject == forged
        assert not problems["artifact path"].repair  # never deleted through a forged path
        assert secret.exists()
    finally:
        store.conn.execute("DELETE FROM artifacts WHERE hash = ?", (forged,))


@pytest.mark.parametrize("forged", ["../../../outside", "/tmp/absolute", "x\0y"])
def test_forged_run_ids_never_become_paths(store, tmp_path, forged):
    store.conn.execute(
        "INSERT INTO runs (run_id, dag_name, status, started_at) VALUES (?, 'x', 'failed', 4e9)",
        (forged,),
    )
    try:
        runner = CliRunner()
        with runner.isolated_filesystem(temp_dir=tmp_path):
            exported = runner.invoke(
                main, ["export", "latest", "--parquet", "out", "--store", str(store.root)]
            )
            reported = runner.invoke(main, ["report", "latest", "--store", str(store.root)])
            written = sorted(str(p) for p in Path().rglob("*"))
        assert exported.exit_code == 1 and "is not one provtask made" in exported.output
        assert reported.exit_code == 1 and "is not one provtask made" in reported.output
        assert written == []
        assert not (tmp_path.parent / "outside").exists()
    finally:
        store.conn.execute("DELETE FROM runs WHERE run_id = ?", (forged,))


def test_a_store_path_with_a_nul_byte_is_a_clear_error():
    answer = cli("runs", "--store", "store\0evil")
    assert answer.exit_code == 2 and "contains a NUL byte" in answer.output
    assert "Traceback" not in answer.output


# -- fuzzing: broken clusters files and DAG files ----------------------------------------------
VALID_CLUSTERS = (Path(__file__).parent / "configs" / "hpc.yaml").read_text()
VALID_DAG = textwrap.dedent(
    """
    from provtask import DAG, task


    @task(memory="1GB", walltime="00:05:00", retries=1)
    def simulate(seed: int) -> int:
        return seed * 2


    @task
    def total(values: list[int]) -> int:
        return sum(values)


    with DAG("fuzzed", params={"n": 3}) as dag:
        total(simulate.map([1, 2, 3]))
    """
)

yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)


def mutated(text: str) -> st.SearchStrategy[str]:
    """The text with a slice deleted, replaced or duplicated, or cut short."""

    @st.composite
    def build(draw: st.DrawFn) -> str:
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 40)))
        kind = draw(st.sampled_from(["delete", "replace", "duplicate", "truncate"]))
        if kind == "truncate":
            return text[:start]
        if kind == "delete":
            return text[:start] + text[end:]
        if kind == "duplicate":
            return text[:end] + text[start:end] + text[end:]
        return text[:start] + draw(st.text(max_size=10)) + text[end:]

    return build()


@st.composite
def near_valid_clusters(draw: st.DrawFn) -> str:
    """The valid file with one value replaced by something random."""
    data = yaml.safe_load(VALID_CLUSTERS)
    partition = draw(st.sampled_from(sorted(data["partitions"])))
    key = draw(st.sampled_from([*sorted(data["partitions"][partition]), "default", "extra"]))
    value = draw(yaml_values)
    if key in ("default", "extra"):
        data[key] = value
    else:
        data["partitions"][partition][key] = value
    return yaml.safe_dump(data, allow_unicode=True)


broken_clusters = st.one_of(
    mutated(VALID_CLUSTERS),
    near_valid_clusters(),
    yaml_values.map(lambda v: yaml.safe_dump(v, allow_unicode=True)),
    st.text(max_size=200),
)


@functools.cache
def slurm_is_up() -> bool:
    """Asked once: with SLURM installed but stopped, every squeue waits for the controller."""
    return shutil.which("squeue") is not None and slurm_problem() is None


def jobs_from(folder: Path) -> list[str]:
    """Batch jobs SLURM holds that were submitted from ``folder``."""
    listed = subprocess.run(["squeue", "-h", "-o", "%i %Z"], capture_output=True, text=True)
    return [line for line in listed.stdout.splitlines() if line.endswith(f" {folder}")]


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "dag.py").write_text(VALID_DAG)
    return folder


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=broken_clusters)
def test_broken_clusters_files_give_a_config_error_or_a_config(text, fuzz_dir):
    path = fuzz_dir / "clusters.yaml"
    path.write_text(text)
    try:
        load_clusters(path)
    except ConfigError as exc:
        assert str(path) in str(exc)  # the user is told which file to fix


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=broken_clusters)
def test_provtask_run_with_a_broken_clusters_file_submits_nothing(text, fuzz_dir):
    if not slurm_is_up():  # without SLURM nothing could be submitted: the test would be vacuous
        require_slurm()
    path = fuzz_dir / "broken.yaml"
    path.write_text(text)
    try:
        load_clusters(path)
        valid = True
    except ConfigError:
        valid = False
    assume(not valid)  # a file that happens to be valid would really submit jobs
    store = fuzz_dir / "store"

    with contextlib.chdir(fuzz_dir):  # a job submitted from here would run in this folder
        answer = cli("run", "dag.py", "--clusters", str(path), "--store", str(store))

    assert answer.exit_code == 2, answer.output
    assert answer.output.startswith("Error: ") and "Traceback" not in answer.output
    assert isinstance(answer.exception, SystemExit)
    assert not store.exists()  # nothing recorded, nothing started
    assert jobs_from(fuzz_dir) == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=mutated(VALID_DAG))
def test_broken_dag_files_give_one_clean_error(text, fuzz_dir):
    path = fuzz_dir / "broken_dag.py"
    path.write_text(text)
    try:
        load_dag_file(path)
        loaded = True
    except DAGFileError as exc:
        assert str(path.name) in str(exc)
        loaded = False
    if loaded:
        return  # still a valid DAG file: nothing to check here
    store = fuzz_dir / "store"
    answer = cli("run", str(path), "--store", str(store), "--no-progress")
    assert answer.exit_code == 2, answer.output
    assert answer.output.startswith("Error: ") and "Traceback" not in answer.output
    assert not store.exists()
