"""Caching end to end: reuse across runs, invalidation by code edits, switches, `why`, and
tampered artifacts. Task executions are counted with files the tasks append to."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import provtask
from provtask import DAG, DAGError, Store, task
from provtask.analysis.why import why

# A DAG file: make -> scale -> report, and an independent task; scale calls a helper, report
# reads a module constant. Every task appends its id to counts.txt next to the file.
PIPELINE = """
from pathlib import Path

from provtask import DAG, task

COUNTS = Path(__file__).parent / "counts.txt"
OFFSET = 10


def count(name):
    with open(COUNTS, "a") as f:
        f.write(name + "\\n")


def double(x):
    return 2 * x


def unrelated():
    return 1


@task
def make(n: int) -> list[int]:
    count("make")
    return list(range(n))


@task
def scale(values: list[int]) -> list[int]:
    count("scale")
    return [double(v) for v in values]


@task
def report(values: list[int]) -> int:
    count("report")
    return sum(values) + OFFSET


@task
def side(label: str) -> str:
    count("side")
    return label.upper()


with DAG("pipeline", params={"n": 4}) as dag:
    report(scale(make(dag.param("n"))))
    side("x")
"""


def run_file(path: Path, client, store: Path, **options) -> provtask.RunResult:
    return provtask.load_dag_file(path).run(client=client, store=store, **options)


def counts(folder: Path) -> list[str]:
    file = folder / "counts.txt"
    names = sorted(file.read_text().split()) if file.exists() else []
    file.unlink(missing_ok=True)
    return names


@pytest.fixture
def pipeline(tmp_path: Path) -> Path:
    path = tmp_path / "pipeline.py"
    path.write_text(PIPELINE)
    return path


def states(store: Path, run_id: str) -> dict[str, str]:
    tasks = Store(store).tasks(run_id)
    return dict(zip(tasks["task_id"], tasks["state"].astype(str), strict=True))


def test_second_run_reuses_every_task_and_links_the_source(pipeline, client, store_dir):
    first = run_file(pipeline, client, store_dir)
    assert counts(pipeline.parent) == ["make", "report", "scale", "side"]
    second = run_file(pipeline, client, store_dir)

    assert counts(pipeline.parent) == []  # no task function ran again
    assert set(states(store_dir, second.run_id).values()) == {"cached"}
    assert second.ok and second.progress.cached == 4
    assert second["report"] == first["report"] == 2 * 6 + 10
    tasks = Store(store_dir).tasks(second.run_id).set_index("task_id")
    assert (tasks["source_run"] == first.run_id).all()
    assert (tasks["source_attempt"] == 1).all() and (tasks["attempts"] == 0).all()
    assert list(tasks["source_task"]) == list(tasks.index)
    assert Store(store_dir).attempts(second.run_id).empty
    assert Store(store_dir).run(second.run_id)["states"] == {"cached": 4}


@pytest.mark.parametrize(
    ("edit", "rerun"),
    [
        (('count("make")', 'count("make")  # a comment'), []),
        (("return 1\n", "return 2\n"), []),  # a function no task reaches
        (("return 2 * x", "return 3 * x"), ["report", "scale"]),  # a helper
        (("OFFSET = 10", "OFFSET = 11"), ["report"]),  # a module constant
        (("return list(range(n))", "return list(range(1, n + 1))"), ["make", "report", "scale"]),
        (("return label.upper()", "return label.lower()"), ["side"]),  # a task body
    ],
)
def test_an_edit_invalidates_exactly_that_task_and_its_descendants(
    pipeline, client, store_dir, edit, rerun
):
    run_file(pipeline, client, store_dir)
    counts(pipeline.parent)
    old, new = edit
    assert old in PIPELINE
    pipeline.write_text(PIPELINE.replace(old, new))

    result = run_file(pipeline, client, store_dir)

    assert counts(pipeline.parent) == rerun
    assert sorted(t for t, s in states(store_dir, result.run_id).items() if s != "cached") == rerun


def test_why_names_the_code_component_the_input_and_the_version(pipeline, client, store_dir):
    run_file(pipeline, client, store_dir)
    pipeline.write_text(PIPELINE.replace("return 2 * x", "return 3 * x"))
    edited = run_file(pipeline, client, store_dir)

    answer = why(Store(store_dir), edited.run_id, "scale")
    assert [(d["part"], d["name"]) for d in answer["differences"]] == [
        ("code", "helper:pipeline.double")
    ]
    assert "helper:pipeline.double" in answer["explanation"]
    downstream = why(Store(store_dir), edited.run_id, "report")
    assert [(d["part"], d["name"]) for d in downstream["differences"]] == [("input", "values")]
    cached = why(Store(store_dir), edited.run_id, "side")
    assert (
        cached["task"]["cache"] == "hit" and "reused the output of run" in (cached["explanation"])
    )

    pipeline.write_text(
        PIPELINE.replace("return 2 * x", "return 3 * x").replace(
            "@task\ndef side", '@task(cache_version="2")\ndef side'
        )
    )
    versioned = run_file(pipeline, client, store_dir)
    assert counts(pipeline.parent)[-1:] == ["side"]
    version = why(Store(store_dir), versioned.run_id, "side")["differences"]
    assert version == [
        {"part": "cache_version", "name": "cache_version", "before": None, "after": "2"}
    ]


def test_no_cache_and_refresh(pipeline, client, store_dir):
    run_file(pipeline, client, store_dir)
    counts(pipeline.parent)

    run_file(pipeline, client, store_dir, cache=False)
    assert counts(pipeline.parent) == ["make", "report", "scale", "side"]

    refreshed = run_file(pipeline, client, store_dir, refresh="sca*")
    assert counts(pipeline.parent) == ["report", "scale"]  # the match and what depends on it
    tasks = Store(store_dir).tasks(refreshed.run_id).set_index("task_id")
    assert tasks.loc["scale", "cache_note"] == "matches --refresh 'sca*'"
    assert tasks.loc["report", "cache_note"] == "downstream of refreshed task 'scale'"

    with pytest.raises(DAGError, match="refresh: expected task names"):
        run_file(pipeline, client, store_dir, refresh=[""])


def test_map_elements_are_keyed_one_by_one(tmp_path, client, store_dir):
    log = str(tmp_path / "log")

    @task
    def square(x: int, log: str) -> int:
        with open(log, "a") as f:
            f.write(f"{x}\n")
        return x * x

    @task
    def total(values: list[int]) -> int:
        return sum(values)

    def build(xs: list[int]) -> DAG:
        with DAG("squares") as dag:
            total(square.map(xs, log=log))
        return dag

    build([1, 2, 3]).run(client=client, store=store_dir)
    result = build([1, 2, 3, 4]).run(client=client, store=store_dir)

    assert sorted(Path(log).read_text().split()) == ["1", "2", "3", "4"]  # the new one ran
    assert result["total"] == 30
    assert states(store_dir, result.run_id)["square[3]"] == "success"
    assert states(store_dir, result.run_id)["square[0]"] == "cached"


class Model:
    """No stable hash: not a supported type and no __provtask_hash__."""


def test_an_unhashable_constant_makes_the_task_uncacheable_not_the_run_fail(client, store_dir):
    @task
    def use(model: Model, n: int) -> int:
        return n

    with DAG("unhashable") as dag:
        use(Model(), 3)
    result = dag.run(client=client, store=store_dir)
    assert result.ok and result["use"] == 3
    row = Store(store_dir).tasks(result.run_id).iloc[0]
    assert row["cache"] == "uncacheable" and row["cache_key"] is None
    assert "argument 'model'" in row["cache_note"] and "cache=False" in row["cache_note"]

    strict = use.options(cache=True)
    with DAG("strict") as dag:
        strict(Model(), 3)
    with pytest.raises(DAGError, match="task 'use' has cache=True, but argument 'model'"):
        dag.run(client=client, store=store_dir)

    keyed = use.options(cache_key=lambda model, n: n)
    with DAG("keyed") as dag:
        keyed(Model(), 3)
    dag.run(client=client, store=store_dir)
    again = dag.run(client=client, store=store_dir)
    assert states(store_dir, again.run_id) == {"use": "cached"}


def test_a_tampered_artifact_is_refused_and_recomputed(tmp_path, client, store_dir):
    log = str(tmp_path / "log")

    @task
    def big(log: str) -> bytes:
        with open(log, "a") as f:
            f.write("big\n")
        return bytes(range(256)) * 1000  # larger than the inline limit: stored as a file

    @task
    def size(data: bytes) -> int:
        return len(data)

    with DAG("tamper") as dag:
        size(big(log))
    first = dag.run(client=client, store=store_dir)
    artifact = Store(store_dir).artifacts(first.run_id).dropna(subset=["path"]).iloc[0]
    path = store_dir / artifact["path"]
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF
    path.write_bytes(bytes(data))

    second = dag.run(client=client, store=store_dir)

    assert Path(log).read_text().split() == ["big", "big"]  # recomputed, not loaded
    tasks = Store(store_dir).tasks(second.run_id).set_index("task_id")
    assert tasks.loc["big", "state"] == "success"
    assert "is corrupted" in tasks.loc["big", "cache_note"]
    assert tasks.loc["size", "state"] == "cached"  # same output again: downstream reused
    assert second["big"] == bytes(range(256)) * 1000  # the file was written afresh


def test_cache_options_are_checked_when_decorating():
    with pytest.raises(provtask.ResourceError, match="cache: expected True or False"):
        task(cache="yes")(lambda: None)
    with pytest.raises(provtask.ResourceError, match="cache_version: expected a string"):
        task(cache_version=2)(lambda: None)
    with pytest.raises(provtask.ResourceError, match="cache_key: expected a function"):
        task(cache_key="n")(lambda: None)


def test_code_identity_is_computed_when_the_run_starts(tmp_path):
    path = tmp_path / "late.py"
    path.write_text(
        textwrap.dedent(
            """
            from provtask import DAG, task

            @task
            def early(x: int) -> int:
                return helper(x)

            def helper(x):
                return x + 1

            with DAG("late") as dag:
                early(1)
            """
        )
    )
    dag = provtask.load_dag_file(path)
    early = dag.graph.nodes["early"]["task"]
    assert "helper:late.helper" in early.code_identity.components
