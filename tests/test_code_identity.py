"""Code identity: a task's source and the user code, constants and libraries it depends on."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from provtask import task
from provtask.code_identity import CodeIdentity, code_hash, code_identity, function_source
from provtask.errors import ResourceError


class Project:
    """Versions of a small project written to fresh directories and imported for real."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.versions = 0
        self.names: set[str] = set()

    def load(self, files: dict[str, str], module: str = "tasks", *more: str) -> ModuleType:
        """Import ``module`` (and the ``more`` modules) from a new version of the files."""
        self.forget()
        self.versions += 1
        directory = self.root / f"v{self.versions}"
        directory.mkdir()
        for name, text in files.items():
            (directory / f"{name}.py").write_text(textwrap.dedent(text))
        self.names = set(files)
        sys.path.insert(0, str(directory))
        try:
            for name in more:
                importlib.import_module(name)
            return importlib.import_module(module)
        finally:
            sys.path.remove(str(directory))

    def identity(self, files: dict[str, str], module: str = "tasks", fn: str = "f"):
        return code_identity(getattr(self.load(files, module), fn))

    def forget(self) -> None:
        for name in self.names:
            sys.modules.pop(name, None)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    made = Project(tmp_path)
    yield made
    made.forget()


def sources(**modules: str) -> dict[str, str]:
    return {name: textwrap.dedent(text) for name, text in modules.items()}


def edited(files: dict[str, str], module: str, old: str, new: str) -> dict[str, str]:
    assert old in files[module], old
    return {**files, module: files[module].replace(old, new)}


# -- the function's own source -------------------------------------------------------------------
BASE = """
def f(x, y=2):
    total = x + y
    return total * 2
"""


@pytest.mark.parametrize(
    "variant",
    [
        # comments and blank lines
        """
        # leading comment

        def f(x, y=2):  # trailing comment
            # inside
            total = x + y


            return total * 2  # done
        """,
        # formatting
        """
        def f(x,
              y = 2):
            total = (x +
                     y)
            return (total*2)
        """,
        # decorators
        """
        import functools

        @functools.lru_cache(maxsize=None)
        def f(x, y=2):
            total = x + y
            return total * 2
        """,
        # indented: a function defined inside a block
        """
        if True:
            def f(x, y=2):
                total = x + y
                return total * 2
        """,
        # a docstring
        '''
        def f(x, y=2):
            """Twice the sum."""
            total = x + y
            return total * 2
        ''',
    ],
)
def test_code_hash_ignores_comments_decorators_formatting_and_docstrings(project, variant):
    base = project.identity({"tasks": BASE})
    other = project.identity({"tasks": variant})
    assert other == base
    assert function_source(project.load({"tasks": variant}).f) == (
        "def f(x, y=2):\n    total = x + y\n    return total * 2"
    )


@pytest.mark.parametrize(
    "variant",
    [
        "def f(x, y=2):\n    total = x + y\n    return total * 3\n",
        "def f(x, y=3):\n    total = x + y\n    return total * 2\n",
        "def f(x, z=2):\n    total = x + z\n    return total * 2\n",
        "def f(x, y=2):\n    total = x - y\n    return total * 2\n",
        "def f(x, y=2):\n    total = x + y\n    print(total)\n    return total * 2\n",
        "def f(x: int, y=2):\n    total = x + y\n    return total * 2\n",
        "async def f(x, y=2):\n    total = x + y\n    return total * 2\n",
    ],
)
def test_code_hash_changes_when_the_code_changes(project, variant):
    assert project.identity({"tasks": variant}).hash != project.identity({"tasks": BASE}).hash


def test_task_decorator_arguments_do_not_change_the_code_hash(project):
    plain = project.load({"tasks": BASE}).f
    small = project.load({"tasks": "from provtask import task\n@task(memory='1GB')\n" + BASE}).f
    large = project.load(
        {"tasks": "from provtask import task\n@task(memory='64GB', walltime='10:00')\n" + BASE}
    ).f
    assert small.code_hash == large.code_hash == code_hash(plain)
    assert small.options(memory="2GB").code_hash == small.code_hash


def test_code_hash_is_the_identity_hash_and_source_is_the_sha256_of_the_source():
    @task
    def local(x):
        return x + 1

    identity = code_identity(local.fn)
    assert isinstance(identity, CodeIdentity)
    assert local.code_hash == code_hash(local.fn) == identity.hash
    assert function_source(local.fn) == "def local(x):\n    return x + 1"
    assert list(identity.components) == ["source"]


def _exec_function(source: str):
    namespace: dict = {}
    exec(compile(source, "<no source file>", "exec"), namespace)
    return namespace["f"]


def test_code_hash_without_source_falls_back_to_bytecode():
    simple = "def f(x):\n    return x + 1\n"
    first, second = _exec_function(simple), _exec_function(simple)
    assert function_source(first) is None
    assert code_hash(first) == code_hash(second)
    assert code_hash(first) != code_hash(_exec_function("def f(x):\n    return x + 2\n"))


def test_code_hash_without_source_is_stable_with_nested_functions():
    nested = "def f(xs):\n    return sorted(xs, key=lambda v: -v)\n"
    first, second = _exec_function(nested), _exec_function(nested)
    assert code_hash(first) == code_hash(second)


def test_code_hash_without_source_follows_helpers():
    source = "def helper(x):\n    return x + {}\n\ndef f(x):\n    return helper(x)\n"
    first, second = _exec_function(source.format(1)), _exec_function(source.format(2))
    assert "helper:<unknown>.helper" in code_identity(first).components
    assert code_hash(first) != code_hash(second)


def test_lambdas_are_hashed_by_their_code():
    inc = lambda v: v + 1  # noqa: E731
    inc_again = lambda v: v + 1  # noqa: E731
    dec = lambda v: v - 1  # noqa: E731
    assert code_hash(inc) == code_hash(inc_again)
    assert code_hash(inc) != code_hash(dec)


def test_a_task_must_be_a_python_function():
    with pytest.raises(ResourceError, match="must decorate a Python function"):
        code_identity(len)


# -- helpers, constants and classes it depends on --------------------------------------------------
PROJECT = sources(
    helpers="""
        import json

        SCALE = 2.5
        UNUSED = 1


        def compute(x):
            return inner(x) * SCALE


        def inner(x):
            return json.dumps(x).count("1")  # a standard-library call


        def unrelated(x):
            return x - 1
    """,
    tasks="""
        import helpers
        from helpers import inner

        N = 3
        OTHER = 4


        def local_helper(x):
            return x * N


        def f(x):
            return helpers.compute(x) + local_helper(x) + inner(x)


        def not_called(x):
            return x
    """,
)


def test_components_name_the_helpers_and_constants_reached(project):
    identity = project.identity(PROJECT)
    assert sorted(identity.components) == [
        "const:helpers.SCALE",
        "const:tasks.N",
        "helper:helpers.compute",
        "helper:helpers.inner",
        "helper:tasks.local_helper",
        "source",
    ]


@pytest.mark.parametrize(
    ("module", "old", "new", "component"),
    [
        ("tasks", "return x * N", "return x * N + 1", "helper:tasks.local_helper"),
        ("helpers", "* SCALE", "/ SCALE", "helper:helpers.compute"),  # through helpers.compute
        ("helpers", 'count("1")', 'count("2")', "helper:helpers.inner"),  # transitive
        ("tasks", "N = 3", "N = 4", "const:tasks.N"),
        ("helpers", "SCALE = 2.5", "SCALE = 2.6", "const:helpers.SCALE"),
    ],
)
def test_editing_a_helper_or_a_constant_it_reads_changes_the_hash(
    project, module, old, new, component
):
    before = project.identity(PROJECT)
    after = project.identity(edited(PROJECT, module, old, new))
    assert after.hash != before.hash
    changed = {k for k in before.components if before.components[k] != after.components.get(k)}
    assert changed == {component}


def test_user_code_under_sys_prefix_is_user_code(project, monkeypatch):
    """A venv made at the project's root (``python -m venv .``) puts sys.prefix above the
    project's own modules; Debian's Python has sys.prefix /usr."""
    from provtask import code_identity as module

    monkeypatch.setattr(sys, "prefix", str(project.root))
    monkeypatch.setattr(sys, "exec_prefix", str(project.root))
    module._library_roots.cache_clear()
    module._is_library_file.cache_clear()
    try:
        before = project.identity(PROJECT)
        after = project.identity(edited(PROJECT, "helpers", "* SCALE", "/ SCALE"))
    finally:
        module._library_roots.cache_clear()
        module._is_library_file.cache_clear()
    assert "helper:helpers.compute" in before.components
    assert after.hash != before.hash


@pytest.mark.parametrize(
    ("module", "old", "new"),
    [
        ("tasks", "return x * N", "return x * N  # a comment"),
        ("helpers", "def unrelated(x):\n    return x - 1", "def unrelated(x):\n    return x"),
        ("tasks", "def not_called(x):\n    return x", "def not_called(x):\n    return 2"),
        ("helpers", "UNUSED = 1", "UNUSED = 2"),
        ("tasks", "OTHER = 4", "OTHER = 5"),
        ("helpers", "def compute(x):", "def compute(x):\n    '''Documented.'''"),
    ],
)
def test_comments_docstrings_and_unrelated_code_do_not_change_the_hash(project, module, old, new):
    before = project.identity(PROJECT)
    assert project.identity(edited(PROJECT, module, old, new)) == before


def test_helpers_that_call_each_other_are_visited_once(project):
    files = {
        "tasks": """
            def even(n):
                return n == 0 or odd(n - 1)


            def odd(n):
                return n != 0 and even(n - 1)


            def f(n):
                return even(n) and f(n - 1)
        """
    }
    identity = project.identity(files)
    assert sorted(identity.components) == ["helper:tasks.even", "helper:tasks.odd", "source"]
    assert project.identity(edited(files, "tasks", "n == 0 or", "n == 1 or")) != identity


CLASSES = sources(
    models="""
        import dataclasses


        class Base:
            def energy(self, x):
                return x * 2


        @dataclasses.dataclass(frozen=True)
        class Model(Base):
            size: int

            def run(self, x):
                return self.energy(x) + offset()


        def offset():
            return 1
    """,
    tasks="""
        from models import Model


        def f(x):
            return Model(3).run(x)
    """,
)


@pytest.mark.parametrize(
    ("old", "new", "component"),
    [
        ("return self.energy(x) +", "return self.energy(x) -", "class:models.Model"),
        ("return x * 2", "return x * 3", "class:models.Base"),
        ("    return 1", "    return 2", "helper:models.offset"),  # called from a method
        ("size: int", "size: float", "class:models.Model"),
    ],
)
def test_classes_are_followed_through_methods_and_bases(project, old, new, component):
    before = project.identity(CLASSES)
    assert "class:models.Model" in before.components
    after = project.identity(edited(CLASSES, "models", old, new))
    changed = {k for k in before.components if before.components[k] != after.components.get(k)}
    assert changed == {component}


CONSTANTS = sources(
    tasks="""
        import enum
        from pathlib import Path


        class Mode(enum.Enum):
            FAST = 1
            SLOW = 2


        MODE = Mode.FAST
        GRID = (1, 2, 3)
        TABLE = {"a": [1, 2], "b": frozenset({3})}
        DATA = Path("data.csv")


        def f(x, scale=GRID[0]):
            return (MODE, GRID, TABLE["a"], DATA.name, x * scale)
    """
)


@pytest.mark.parametrize(
    ("old", "new", "component"),
    [
        ("MODE = Mode.FAST", "MODE = Mode.SLOW", "const:tasks.MODE"),
        ("FAST = 1", "FAST = 10", "const:tasks.MODE"),
        ("GRID = (1, 2, 3)", "GRID = (1, 2)", "const:tasks.GRID"),
        ('"b": frozenset({3})', '"b": frozenset({4})', "const:tasks.TABLE"),
        ('Path("data.csv")', 'Path("data2.csv")', "const:tasks.DATA"),
        ("GRID = (1, 2, 3)", "GRID = (5, 2, 3)", "defaults"),
    ],
)
def test_module_constants_are_hashed_by_value(project, old, new, component):
    before = project.identity(CONSTANTS)
    after = project.identity(edited(CONSTANTS, "tasks", old, new))
    assert after.hash != before.hash
    assert before.components[component] != after.components[component]


def test_a_path_constant_is_identified_by_its_text_not_the_file(project, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("data.csv").write_text("1,2\n")
    before = project.identity(CONSTANTS)
    Path("data.csv").write_text("3,4\n")
    assert project.identity(CONSTANTS) == before


def test_closure_variables_and_function_factories(project):
    files = {
        "tasks": """
            def make(scale):
                def f(x):
                    return x * scale
                return f


            f = make(2)
        """
    }
    first = project.identity(files)
    assert "const:tasks.make.<locals>.f.scale" in first.components
    assert project.identity(edited(files, "tasks", "make(2)", "make(3)")) != first


def test_wrapped_helpers_and_helper_tasks_are_followed(project):
    files = {
        "tasks": """
            import functools

            from provtask import task


            @functools.lru_cache(maxsize=None)
            def cached(x):
                return x + 1


            @task(memory="1GB")
            def other_task(x):
                return x * 2


            def f(x):
                return cached(x) + other_task(x) + functools.reduce(max, [x])
        """
    }
    identity = project.identity(files)
    assert {"helper:tasks.cached", "helper:tasks.other_task"} <= set(identity.components)
    assert project.identity(edited(files, "tasks", "x + 1", "x + 2")) != identity
    assert project.identity(edited(files, "tasks", "x * 2", "x * 3")) != identity


def test_module_level_objects_without_a_stable_hash_are_reported_as_opaque(project):
    files = {
        "tasks": """
            class Registry:
                def lookup(self, x):
                    return x


            REGISTRY = Registry()


            def f(x):
                return REGISTRY.lookup(x)
        """
    }
    identity = project.identity(files)
    assert identity.components["opaque:tasks.REGISTRY"] == "tasks.Registry"
    assert "class:tasks.Registry" in identity.components
    assert project.identity(edited(files, "tasks", "return x\n", "return -x\n")) != identity


def test_third_party_packages_count_by_version_and_the_standard_library_not_at_all(project):
    files = {
        "tasks": """
            import json
            import os.path

            import numpy as np


            def f(x):
                import pandas
                return np.sqrt(x), json.dumps(x), os.path.join("a", "b"), pandas.NA
        """
    }
    identity = project.identity(files)  # pandas is imported (by this test module)
    assert identity.components["lib:numpy"] == np.__version__
    assert identity.components["lib:pandas"] == pd.__version__
    assert not any(k in identity.components for k in ("lib:json", "lib:os", "lib:posixpath"))


def test_a_module_imported_inside_the_function_is_followed_once_imported(project):
    files = {
        "extra": "def g(x):\n    return x + 1\n",
        "tasks": "def f(x):\n    import extra\n    return extra.g(x)\n",
    }
    assert project.identity(files).components.keys() == {"source"}  # never imported: unknown
    identity = code_identity(project.load(files, "tasks", "extra").f)
    assert "helper:extra.g" in identity.components
    edited_files = edited(files, "extra", "x + 1", "x + 2")
    assert code_identity(project.load(edited_files, "tasks", "extra").f) != identity


# -- DAG files, scripts and fresh processes --------------------------------------------------------
DAG_FILE = """
from provtask import DAG, task

LIMIT = 10


def clip(x):
    return min(x, LIMIT)


@task
def simulate(x):
    return clip(x) * 2


with DAG("sweep") as dag:
    simulate(3)

if __name__ == "__main__":
    from provtask.code_identity import code_identity
    import json
    print(json.dumps(code_identity(simulate.fn).components))
"""

_LOAD_DAG_FILE = """
import json, sys
from provtask.code_identity import code_identity
from provtask.dagfile import load_dag_file
dag = load_dag_file(sys.argv[1])
fn = dag.graph.nodes["simulate"]["task"].fn
print(json.dumps(code_identity(fn).components))
"""


def _components_in_subprocess(argv: list[str], seed: str) -> dict:
    done = subprocess.run(
        [sys.executable, *argv],
        env={**os.environ, "PYTHONHASHSEED": seed},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_dag_file_identity_is_the_same_in_fresh_processes_and_as_a_script(tmp_path):
    path = tmp_path / "sweep.py"
    path.write_text(DAG_FILE)
    loaded = [_components_in_subprocess(["-c", _LOAD_DAG_FILE, str(path)], s) for s in "12"]
    as_script = _components_in_subprocess([str(path)], "3")
    assert loaded[0] == loaded[1] == as_script
    assert sorted(as_script) == ["const:sweep.LIMIT", "helper:sweep.clip", "source"]
    path.write_text(DAG_FILE.replace("LIMIT = 10", "LIMIT = 11"))
    assert (
        _components_in_subprocess([str(path)], "3")["const:sweep.LIMIT"]
        != (as_script["const:sweep.LIMIT"])
    )
