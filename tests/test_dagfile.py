"""Loading DAG files with provtask.load_dag_file."""

from __future__ import annotations

import contextlib
import sys
import textwrap
from pathlib import Path

import cloudpickle
import pytest

import provtask
from provtask import DAG, DAGFileError

REPO = Path(__file__).resolve().parents[1]

HEADER = "from provtask import DAG, task\n\n@task\ndef one():\n    return 1\n\n"


@pytest.fixture(autouse=True)
def _forget_loaded_modules():
    """Loading registers modules in sys.modules and with cloudpickle; undo that per test."""
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("provtask_dagfile_"):
            module = sys.modules.pop(name)
            with contextlib.suppress(ValueError):
                cloudpickle.unregister_pickle_by_value(module)


def write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def test_loads_the_only_dag(tmp_path):
    path = write(
        tmp_path,
        "flow.py",
        HEADER + 'with DAG("flow", params={"n": 2}) as dag:\n    one()\n',
    )
    dag = provtask.load_dag_file(path)
    assert isinstance(dag, DAG)
    assert dag.name == "flow"
    assert dag.params == {"n": 2}
    assert list(dag.graph.nodes) == ["one"]
    assert dag.source_file == path.resolve()
    dag.validate()


def test_loads_from_a_string_path(tmp_path):
    path = write(tmp_path, "flow.py", HEADER + 'with DAG("flow") as dag:\n    one()\n')
    assert provtask.load_dag_file(str(path)).name == "flow"


def test_loads_the_example_ensemble():
    dag = provtask.load_dag_file(REPO / "dags" / "ensemble.py")
    assert dag.name == "ensemble"
    assert dag.params == {"n": 8}
    kinds = dict(dag.graph.nodes(data="kind"))
    assert kinds == {"make_inputs": "call", "simulate": "map", "summarise": "call"}
    assert set(dag.graph.edges) == {("make_inputs", "simulate"), ("simulate", "summarise")}
    assert dag.graph.nodes["simulate"]["task"].resources.retries == 1
    dag.validate()


def test_missing_file(tmp_path):
    with pytest.raises(DAGFileError, match="does not exist") as info:
        provtask.load_dag_file(tmp_path / "nope.py")
    assert "nope.py" in str(info.value)
    assert info.value.exit_code == 2


def test_directory_is_not_a_dag_file(tmp_path):
    (tmp_path / "pkg.py").mkdir()
    with pytest.raises(DAGFileError, match="does not exist"):
        provtask.load_dag_file(tmp_path / "pkg.py")


def test_non_python_file(tmp_path):
    path = write(tmp_path, "flow.yaml", "dag: flow\n")
    with pytest.raises(DAGFileError, match=r"not a Python \(\.py\) file"):
        provtask.load_dag_file(path)


def test_file_raising_at_import_names_the_line(tmp_path):
    path = write(
        tmp_path,
        "broken.py",
        """\
        from provtask import DAG

        settings = {"a": 1}
        value = settings["b"]
        """,
    )
    with pytest.raises(DAGFileError) as info:
        provtask.load_dag_file(path)
    message = str(info.value)
    assert "broken.py" in message
    assert "failed to load" in message
    assert "line 4" in message
    assert 'settings["b"]' in message
    assert "KeyError" in message
    assert isinstance(info.value.__cause__, KeyError)


def test_error_raised_in_a_helper_names_the_deepest_line_of_the_file(tmp_path):
    path = write(
        tmp_path,
        "helper.py",
        """\
        def helper():
            raise RuntimeError("no inputs found")


        helper()
        """,
    )
    with pytest.raises(DAGFileError, match=r"line 2: .*RuntimeError: no inputs found"):
        provtask.load_dag_file(path)


def test_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path, "syntax.py", "x = 1\ny = (\n")
    with pytest.raises(DAGFileError, match="SyntaxError") as info:
        provtask.load_dag_file(path)
    assert "line 2" in str(info.value)


def test_failed_import_leaves_no_module_behind(tmp_path):
    path = write(tmp_path, "broken.py", "raise ValueError('nope')\n")
    before = set(sys.modules)
    with pytest.raises(DAGFileError, match="ValueError: nope"):
        provtask.load_dag_file(path)
    assert {m for m in set(sys.modules) - before if m.startswith("provtask_dagfile_")} == set()


def test_bad_task_definition_is_reported_as_a_load_error(tmp_path):
    path = write(
        tmp_path,
        "resources.py",
        """\
        from provtask import task

        @task(memory="lots")
        def big():
            return 1
        """,
    )
    with pytest.raises(DAGFileError, match=r"ResourceError: memory: cannot read 'lots'"):
        provtask.load_dag_file(path)


def test_file_without_a_dag(tmp_path):
    path = write(tmp_path, "tasks_only.py", HEADER)
    with pytest.raises(DAGFileError, match="defines no DAG"):
        provtask.load_dag_file(path)


def test_unbound_dag_is_not_found_and_the_message_says_how_to_bind_it(tmp_path):
    path = write(tmp_path, "unbound.py", HEADER + 'with DAG("flow"):\n    one()\n')
    with pytest.raises(DAGFileError, match=r"defines no DAG.*as dag"):
        provtask.load_dag_file(path)


def test_two_dags_without_a_name_lists_them(tmp_path):
    path = write(
        tmp_path,
        "two.py",
        HEADER + 'with DAG("zeta") as z:\n    one()\n\nwith DAG("alpha") as a:\n    one()\n',
    )
    with pytest.raises(DAGFileError, match=r"several DAGs \(alpha, zeta\).*--dag NAME"):
        provtask.load_dag_file(path)


def test_two_dags_choose_by_name(tmp_path):
    path = write(
        tmp_path,
        "two.py",
        HEADER
        + 'with DAG("zeta") as z:\n    one()\n\nwith DAG("alpha") as a:\n    one()\n    one()\n',
    )
    alpha = provtask.load_dag_file(path, "alpha")
    zeta = provtask.load_dag_file(path, name="zeta")
    assert alpha.name == "alpha" and alpha.graph.number_of_nodes() == 2
    assert zeta.name == "zeta" and zeta.graph.number_of_nodes() == 1


def test_unknown_dag_name_lists_the_available_ones(tmp_path):
    path = write(tmp_path, "one.py", HEADER + 'with DAG("flow") as dag:\n    one()\n')
    with pytest.raises(DAGFileError, match=r"no DAG named 'other' \(it has: flow\)"):
        provtask.load_dag_file(path, "other")


def test_dag_file_tasks_are_pickled_by_value(tmp_path):
    """Workers that cannot import the DAG file still get its task functions."""
    path = write(
        tmp_path,
        "byvalue.py",
        """\
        from provtask import DAG, task

        FACTOR = 3


        def helper(x):
            return FACTOR * x


        @task
        def triple(x):
            return helper(x)

        with DAG("byvalue") as dag:
            triple(2)
        """,
    )
    dag = provtask.load_dag_file(path)
    fn = dag.graph.nodes["triple"]["task"].fn
    payload = cloudpickle.dumps(fn)
    (name,) = [m for m in sys.modules if m.startswith("provtask_dagfile_byvalue")]
    module = sys.modules.pop(name)  # like a worker that cannot import the file
    try:
        assert cloudpickle.loads(payload)(5) == 15
    finally:
        cloudpickle.unregister_pickle_by_value(module)


def test_same_stem_in_two_folders_are_distinct_modules(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write(tmp_path / "a", "flow.py", HEADER + 'with DAG("first") as dag:\n    one()\n')
    second = write(tmp_path / "b", "flow.py", HEADER + 'with DAG("second") as dag:\n    one()\n')
    assert provtask.load_dag_file(first).name == "first"
    assert provtask.load_dag_file(second).name == "second"
    assert provtask.load_dag_file(first).name == "first"
