"""Identities of values (value_hash) and of task code (code_hash)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from provtask import task
from provtask.code_identity import code_hash, function_source
from provtask.hashing import combine, value_hash


@dataclasses.dataclass
class Point:
    x: int
    y: int


# -- value_hash --------------------------------------------------------------------------------
def test_value_hash_is_hex_blake2b_256():
    digest = value_hash({"a": 1})
    assert len(digest) == 64
    int(digest, 16)


def test_dict_order_does_not_matter():
    first = {"b": [1, 2], "a": {"y": 2, "x": 1}, 3: "three"}
    second = {3: "three", "a": {"x": 1, "y": 2}, "b": [1, 2]}
    assert list(first) != list(second)
    assert value_hash(first) == value_hash(second)


def test_set_order_does_not_matter():
    first, second = {8, 16}, {16, 8}
    assert list(first) != list(second)  # colliding keys: iteration follows insertion order
    assert value_hash(first) == value_hash(second)
    assert value_hash(frozenset(["a", "b"])) == value_hash(frozenset(["b", "a"]))
    assert value_hash([{8, 16}]) == value_hash([{16, 8}])


@pytest.mark.parametrize(
    "values",
    [
        [1, 1.0, True, "1", b"1", [1], (1,), {1}, {"1": 1}],
        [0, 0.0, -0.0, False, None, "", b"", [], (), set(), {}],
        [[1, 2], (1, 2), [[1, 2]], [(1, 2)], "12", [1, [2]]],
        [["ab"], ["a", "b"], "ab", ["a", "", "b"]],
        [{"a": "bc"}, {"ab": "c"}, {"a": ["b", "c"]}, [("a", "bc")]],
        [1, 2, 2**64, -1, 1.5, 1.5000000000000002],
        [Point(1, 2), Point(2, 1), (1, 2), {"x": 1, "y": 2}],
    ],
)
def test_distinct_values_have_distinct_hashes(values):
    hashes = [value_hash(v) for v in values]
    assert len(set(hashes)) == len(values), dict(zip(map(repr, values), hashes, strict=True))


def test_equal_values_hash_equal_and_nan_is_stable():
    assert value_hash([1, "a", {"k": (2.5, None)}]) == value_hash([1, "a", {"k": (2.5, None)}])
    assert value_hash(Point(1, 2)) == value_hash(Point(1, 2))
    assert value_hash(float("nan")) == value_hash(float("nan"))


def test_combine_depends_on_order_and_content():
    a, b = value_hash(1), value_hash(2)
    assert combine([a, b]) != combine([b, a])
    assert combine([a, b]) == combine([a, b])
    assert combine([]) != combine([a])


_VALUES_SCRIPT = """
import json, types
from provtask.hashing import value_hash
stable = [
    {"b": 1, "a": [1, 2.5, None, True]},
    {"alpha", "beta", "gamma", "delta", "epsilon"},
    frozenset({"x", "y"}),
    [{"k": {"z", "w"}}, ("t", b"bytes")],
    {("a", 1): "tuple key"},
    "text",
]
print(json.dumps({
    "stable": [value_hash(v) for v in stable],
    "object_with_set": value_hash(types.SimpleNamespace(tags={"alpha", "beta", "gamma", "delta"})),
}))
"""


@pytest.fixture(scope="module")
def hashes_from_other_processes() -> list[dict]:
    """value_hash results from two interpreters with different str hash seeds."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _VALUES_SCRIPT],
            env={**os.environ, "PYTHONHASHSEED": seed},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in ("1", "2")
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    return results


def _here() -> dict:
    namespace: dict = {}
    exec(_VALUES_SCRIPT.replace("print(", "result = ("), namespace)
    return json.loads(namespace["result"])


def test_value_hash_is_stable_across_processes(hashes_from_other_processes):
    first, second = hashes_from_other_processes
    assert first["stable"] == second["stable"]
    assert _here()["stable"] == first["stable"]


def test_value_hash_of_an_object_holding_a_set_is_stable_across_processes(
    hashes_from_other_processes,
):
    first, second = hashes_from_other_processes
    assert first["object_with_set"] == second["object_with_set"]


# -- code_hash ---------------------------------------------------------------------------------
_counter = iter(range(10_000))


def load_function(tmp_path: Path, source: str, name: str = "f"):
    """Import ``source`` as a real module file (so inspect.getsource works) and return ``name``."""
    module_name = f"hashing_case_{next(_counter)}"
    path = tmp_path / f"{module_name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


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
    ],
)
def test_code_hash_ignores_comments_decorators_and_formatting(tmp_path, variant):
    base = load_function(tmp_path, BASE)
    other = load_function(tmp_path, variant)
    assert code_hash(other) == code_hash(base)
    assert function_source(other) == function_source(base)


@pytest.mark.parametrize(
    "variant",
    [
        "def f(x, y=2):\n    total = x + y\n    return total * 3\n",
        "def f(x, y=3):\n    total = x + y\n    return total * 2\n",
        "def f(x, z=2):\n    total = x + z\n    return total * 2\n",
        "def f(x, y=2):\n    total = x - y\n    return total * 2\n",
        "def f(x, y=2):\n    total = x + y\n    print(total)\n    return total * 2\n",
        "async def f(x, y=2):\n    total = x + y\n    return total * 2\n",
    ],
)
def test_code_hash_changes_when_the_code_changes(tmp_path, variant):
    assert code_hash(load_function(tmp_path, variant)) != code_hash(load_function(tmp_path, BASE))


def test_task_decorator_arguments_do_not_change_the_code_hash(tmp_path):
    plain = load_function(tmp_path, BASE)
    small = load_function(
        tmp_path, "from provtask import task\n\n@task(memory='1GB')\n" + BASE.lstrip()
    )
    large = load_function(
        tmp_path,
        "from provtask import task\n\n@task(memory='64GB', walltime='10:00:00')\n" + BASE.lstrip(),
    )
    assert small.code_hash == large.code_hash == code_hash(plain)
    assert small.options(memory="2GB").code_hash == small.code_hash


def test_code_hash_of_task_in_this_file_is_the_sha256_of_its_source():
    @task
    def local(x):
        return x + 1

    assert local.code_hash == code_hash(local.fn)
    assert function_source(local.fn) == "def local(x):\n    return x + 1"


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


def test_lambdas_are_hashed_by_their_code():
    inc = lambda v: v + 1  # noqa: E731
    inc_again = lambda v: v + 1  # noqa: E731
    dec = lambda v: v - 1  # noqa: E731
    assert code_hash(inc) == code_hash(inc_again)
    assert code_hash(inc) != code_hash(dec)
