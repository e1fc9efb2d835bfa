"""Identities of values (value_hash): stable across processes, canonical, and strict."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from provtask.errors import StoreError, UnhashableValue
from provtask.hashing import PathMemo, combine, hash_arguments, value_hash


@dataclasses.dataclass
class Point:
    x: int
    y: int


# -- builtins and containers ---------------------------------------------------------------------
def test_value_hash_is_the_same_in_every_process():
    """Cache keys must survive a restart: no hash() salt, no id(), no dict order."""
    code = "from provtask.hashing import value_hash; print(value_hash({'a': 1, 'b': {2, 3}}))"
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert digests == {value_hash({"b": {3, 2}, "a": 1})}


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


class Color(enum.Enum):
    RED = 1
    BLUE = 2


class Level(enum.IntEnum):
    LOW = 1


@pytest.mark.parametrize(
    "values",
    [
        [1, 1.0, True, "1", b"1", bytearray(b"1"), [1], (1,), {1}, {"1": 1}, 1 + 0j],
        [0, 0.0, -0.0, False, None, "", b"", [], (), set(), {}, range(0)],
        [[1, 2], (1, 2), [[1, 2]], [(1, 2)], "12", [1, [2]], range(1, 3)],
        [["ab"], ["a", "b"], "ab", ["a", "", "b"]],
        [{"a": "bc"}, {"ab": "c"}, {"a": ["b", "c"]}, [("a", "bc")]],
        [1, 2, 2**64, -1, 1.5, 1.5000000000000002],
        [Point(1, 2), Point(2, 1), (1, 2), {"x": 1, "y": 2}],
        [Color.RED, Color.BLUE, 1, Level.LOW, "RED"],
        [np.int64(1), np.int32(1), np.float64(1.0), 1, 1.0, np.array(1), np.array([1])],
        [Path("a"), "a", datetime.date(2024, 1, 2), "2024-01-02"],
    ],
)
def test_distinct_values_have_distinct_hashes(values, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
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


# -- property tests: canonical and collision-free on JSON-like data --------------------------------
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=5)
    | st.binary(max_size=5)
)
_hashables = st.recursive(_scalars, lambda inner: st.tuples(inner, inner), max_leaves=4)
values_strategy = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(_hashables, inner, max_size=4)
        | st.frozensets(_hashables, max_size=4)
        | st.sets(_hashables, max_size=4)
    ),
    max_leaves=12,
)


def canonical(value):
    """A type-exact structural form: equal forms must hash equal, different ones differ."""
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else value.hex())
    if isinstance(value, list | tuple):
        return (type(value).__name__, tuple(canonical(v) for v in value))
    if isinstance(value, dict):
        return ("dict", frozenset((canonical(k), canonical(v)) for k, v in value.items()))
    if isinstance(value, set | frozenset):
        return ("set", frozenset(canonical(v) for v in value))
    return (type(value).__name__, value)


def reordered(value):
    """The same value with every dict and set built in reverse insertion order."""
    if isinstance(value, list | tuple):
        return type(value)(reordered(v) for v in value)
    if isinstance(value, dict):
        return {reordered(k): reordered(v) for k, v in reversed(list(value.items()))}
    if isinstance(value, set | frozenset):
        return type(value)(reordered(v) for v in reversed(list(value)))
    return value


@given(values_strategy)
def test_insertion_order_never_changes_the_hash(value):
    assert value_hash(reordered(value)) == value_hash(value)


@given(values_strategy, values_strategy)
def test_hashes_are_equal_exactly_when_values_are_structurally_equal(first, second):
    same = canonical(first) == canonical(second)
    assert (value_hash(first) == value_hash(second)) == same


@given(hnp.arrays(hnp.scalar_dtypes(), hnp.array_shapes(min_dims=1, max_dims=3)))
def test_array_hash_ignores_memory_layout_and_sees_every_byte(array):
    assert value_hash(np.asfortranarray(array)) == value_hash(array)
    strided = np.repeat(array, 2, axis=0)[::2]
    assert not strided.flags.c_contiguous or array.shape[0] == 1
    assert value_hash(strided) == value_hash(array)
    changed = array.copy()
    changed.reshape(-1).view(np.uint8)[-1] ^= 1
    assert value_hash(changed) != value_hash(array)


# -- the same hashes in other processes ----------------------------------------------------------
_STABILITY_SCRIPT = """
import dataclasses, datetime, decimal, enum, json, sys, types, uuid, zoneinfo
from collections import namedtuple
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from provtask.hashing import value_hash


@dataclasses.dataclass
class Config:
    name: str
    tags: set


class Mode(enum.Enum):
    FAST = "fast"


Pair = namedtuple("Pair", "left right")


def values(data: Path) -> dict:
    frame = pd.DataFrame({
        "int": [1, 2, 3],
        "float": [0.5, float("nan"), 2.5],
        "bool": [True, False, True],
        "category": pd.Categorical(["b", "a", "b"], categories=["b", "a"], ordered=True),
        "when": pd.date_range("2024-03-30", periods=3, freq="D", tz="Europe/Paris"),
        "naive": pd.date_range("2024-01-01", periods=3, freq="h"),
        "text": ["x", None, "zé"],
        "nullable": pd.array([1, None, 3], dtype="Int64"),
        "period": pd.period_range("2024-01", periods=3, freq="M"),
        "interval": pd.interval_range(0, 3),
        "objects": [{"a", "b"}, ("t", 1), None],
    }, index=pd.Index(["r1", "r2", "r3"], name="row"))
    return {
        "scalars": [None, True, -(2**70), 1.5, float("nan"), -0.0, 2 - 1j, "ünï", b"\\x00"],
        "containers": [bytearray(b"ab"), range(2, 9, 3), {"b": 1, "a": [1, 2.5]}],
        "set_of_strings": {"alpha", "beta", "gamma", "delta", "epsilon"},
        "frozenset": frozenset({"x", "y", ("t", 1)}),
        "nested_sets": [{"k": {"z", "w"}}, ("t", b"bytes")],
        "tuple_keys": {("a", 1): "tuple key", ("b", 2): {"q"}},
        "object_with_set": types.SimpleNamespace(tags={"alpha", "beta", "gamma", "delta"}),
        "dataclass_with_set": Config("c", {"alpha", "beta", "gamma"}),
        "enum_and_namedtuple": [Mode.FAST, Pair({"l", "m"}, 2)],
        "stdlib": [
            datetime.datetime(2024, 3, 31, 2, 30, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")),
            datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
            datetime.date(2024, 1, 1), datetime.time(12, 30), datetime.timedelta(days=1.5),
            decimal.Decimal("1.10"), uuid.UUID(int=7), PurePosixPath("a/b"),
        ],
        "numpy_arrays": [
            np.arange(12, dtype=np.float64).reshape(3, 4),
            np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3)),
            np.array(["2024-01-01", "NaT"], dtype="datetime64[s]"),
            np.array(["a", "bcd"]),
            np.array([True, False]),
        ],
        "numpy_objects": np.array([{"s", "t", "u"}, "x", None], dtype=object),
        "numpy_strings": np.array(["a", "bé", ""], dtype=object),
        "numpy_records": np.array([(1, 2.5), (3, 4.5)], dtype=[("a", "<i4"), ("b", "<f8")]),
        "numpy_scalars": [np.float32(1.5), np.datetime64("2024-01-01"), np.str_("s")],
        "dataframe": frame,
        "series": frame["category"],
        "multiindex": pd.MultiIndex.from_product([["a", "b"], [1, 2]], names=["l", "n"]),
        "pandas_scalars": [pd.Timestamp("2024-01-01", tz="UTC"), pd.NaT, pd.NA,
                           pd.Timedelta("1h"), pd.Period("2024-01", freq="M")],
        "file": data / "input.txt",
        "directory": data,
        "missing": data / "missing",
    }


if __name__ == "__main__":
    print(json.dumps({k: value_hash(v) for k, v in values(Path(sys.argv[1])).items()}))
"""


@pytest.fixture(scope="module")
def stability(tmp_path_factory) -> dict:
    """The script's hashes from two interpreters with different str hash seeds, and here."""
    root = tmp_path_factory.mktemp("stability")
    data = root / "data"
    (data / "sub").mkdir(parents=True)
    (data / "input.txt").write_text("content\n")
    (data / "sub" / "more.bin").write_bytes(bytes(range(256)))
    (data / "sub" / "link.txt").symlink_to(data / "input.txt")
    script = root / "stability_values.py"
    script.write_text(_STABILITY_SCRIPT)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(data)],
            env={**os.environ, "PYTHONHASHSEED": seed},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in ("1", "2")
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    namespace: dict = {"__name__": "stability_values"}
    exec(compile(_STABILITY_SCRIPT, str(script), "exec", dont_inherit=True), namespace)
    here = {k: value_hash(v) for k, v in namespace["values"](data).items()}
    return {"seed 1": results[0], "seed 2": results[1], "here": here}


@pytest.mark.parametrize(
    "label",
    [
        "scalars",
        "containers",
        "set_of_strings",
        "frozenset",
        "nested_sets",
        "tuple_keys",
        "object_with_set",
        "dataclass_with_set",
        "enum_and_namedtuple",
        "stdlib",
        "numpy_arrays",
        "numpy_objects",
        "numpy_strings",
        "numpy_records",
        "numpy_scalars",
        "dataframe",
        "series",
        "multiindex",
        "pandas_scalars",
        "file",
        "directory",
        "missing",
    ],
)
def test_value_hash_is_stable_across_processes(stability, label):
    assert stability["seed 1"][label] == stability["seed 2"][label] == stability["here"][label]


@settings(max_examples=60, derandomize=True, database=None)
@given(value=values_strategy)
def _collect(value, into):
    into.append(value)


def test_generated_values_hash_the_same_in_another_process(tmp_path):
    examples: list = []
    _collect(into=examples)
    assert len(examples) >= 50
    (tmp_path / "values.pickle").write_bytes(pickle.dumps(examples))
    script = (
        "import json, pickle, sys\n"
        "from provtask.hashing import value_hash\n"
        "values = pickle.loads(open(sys.argv[1], 'rb').read())\n"
        "print(json.dumps([value_hash(v) for v in values]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "values.pickle")],
        env={**os.environ, "PYTHONHASHSEED": "3"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [value_hash(v) for v in examples]


# -- numpy and pandas -----------------------------------------------------------------------------
def test_array_dtype_and_shape_are_part_of_the_hash():
    base = np.arange(6, dtype=np.int64)
    assert value_hash(base) == value_hash(np.arange(6, dtype=np.int64))
    assert value_hash(base.astype(np.int32)) != value_hash(base)
    assert value_hash(base.astype(np.float64)) != value_hash(base)
    assert value_hash(base.reshape(2, 3)) != value_hash(base.reshape(3, 2))
    assert value_hash(base.reshape(2, 3)) != value_hash(base)


@pytest.mark.parametrize(
    "other",
    [["ab", "c"], ["a", "bc", ""], ["a", "bc", None], ["a", "bd"], ["a", "b", "c"]],
)
def test_object_arrays_of_strings_hash_each_string(other):
    base = np.array(["a", "bc"], dtype=object)
    assert value_hash(np.array(["a", "bc"], dtype=object)) == value_hash(base)
    assert value_hash(np.array(other, dtype=object)) != value_hash(base)


def test_object_arrays_are_hashed_item_by_item():
    first = np.array([{"a", "b"}, "x", 1], dtype=object)
    second = np.array([{"b", "a"}, "x", 1], dtype=object)
    assert value_hash(first) == value_hash(second)
    assert value_hash(first) != value_hash(np.array([{"a"}, "x", 1], dtype=object))


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "t": [1.0, 2.0, 3.0],
            "c": pd.Categorical(["a", "b", "a"]),
            "when": pd.date_range("2024-01-01", periods=3, tz="UTC"),
        }
    )


def test_equal_dataframes_built_differently_hash_equal():
    original = frame()
    rows = [dict(zip(original.columns, row, strict=True)) for row in original.itertuples(False)]
    rebuilt = pd.DataFrame.from_records(rows)
    rebuilt["c"] = rebuilt["c"].astype(pd.CategoricalDtype(["a", "b"]))
    rebuilt.index = pd.Index([0, 1, 2])  # an Index of the same integers as the RangeIndex
    assert not isinstance(rebuilt.index, pd.RangeIndex)
    assert value_hash(rebuilt) == value_hash(original)


@pytest.mark.parametrize(
    "change",
    [
        lambda df: df.assign(t=[1.0, 2.0, 4.0]),
        lambda df: df.rename(columns={"t": "temperature"}),
        lambda df: df[["c", "t", "when"]],
        lambda df: df.set_index(pd.Index([1, 2, 3])),
        lambda df: df.assign(t=df["t"].astype("float32")),
        lambda df: df.assign(c=df["c"].cat.reorder_categories(["b", "a"])),
        lambda df: df.assign(c=df["c"].cat.as_ordered()),
        lambda df: df.assign(when=df["when"].dt.tz_convert("Europe/Paris")),  # same instants
        lambda df: df.assign(extra=None),
    ],
)
def test_dataframe_hash_sees_values_labels_order_and_dtypes(change):
    assert value_hash(change(frame())) != value_hash(frame())


def test_series_and_index_hashes_include_their_names():
    series = frame()["t"]
    assert value_hash(series) == value_hash(frame()["t"])
    assert value_hash(series.rename("other")) != value_hash(series)
    assert value_hash(pd.Index([1, 2], name="a")) != value_hash(pd.Index([1, 2], name="b"))


# -- paths -----------------------------------------------------------------------------------------
def test_a_file_is_identified_by_its_content(tmp_path):
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("same")
    second.write_text("same")
    assert value_hash(first) == value_hash(second)
    second.write_text("other")
    assert value_hash(first) != value_hash(second)


def test_a_directory_is_identified_by_its_names_and_contents(tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "x.txt").write_text("x")
    before = value_hash(data)
    assert value_hash(data) == before
    (data / "sub" / "x.txt").write_text("y")
    after_edit = value_hash(data)
    (data / "sub" / "x.txt").rename(data / "sub" / "z.txt")
    after_rename = value_hash(data)
    (data / "empty").mkdir()
    after_new_directory = value_hash(data)
    hashes = [before, after_edit, after_rename, after_new_directory]
    assert len(set(hashes)) == len(hashes)


def test_symlinks_are_followed_and_dangling_or_looping_ones_handled(tmp_path):
    target = tmp_path / "target.txt"
    target.write_text("data")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    assert value_hash(link) == value_hash(target)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    missing = tmp_path / "nowhere"
    assert value_hash(dangling) != value_hash(missing)
    loop = tmp_path / "loop"
    (loop / "inner").mkdir(parents=True)
    (loop / "inner" / "back").symlink_to(loop)
    with pytest.raises(UnhashableValue, match="contains itself through a symbolic link"):
        value_hash(loop)


def test_a_missing_path_is_identified_by_its_text_until_it_exists(tmp_path):
    missing = tmp_path / "later.txt"
    assert value_hash(missing) == value_hash(tmp_path / "later.txt")
    assert value_hash(missing) != value_hash(tmp_path / "other.txt")
    before = value_hash(missing)
    missing.write_text("")
    assert value_hash(missing) != before


def test_a_fifo_has_no_content_to_hash(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(UnhashableValue, match="neither a file nor a directory"):
        value_hash(fifo)


def _rewrite_in_place_keeping_size_and_mtime(path: Path, data: bytes) -> None:
    st = path.stat()
    with open(path, "r+b") as file:
        file.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_ino == st.st_ino and path.stat().st_size == st.st_size


def _age(path: Path, seconds: int = 60) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - seconds * 1_000_000_000))


def test_memo_reuses_a_digest_while_path_size_mtime_and_inode_are_unchanged(tmp_path):
    data = tmp_path / "big.bin"
    data.write_bytes(b"a" * 1000)
    _age(data)
    location = tmp_path / "store" / "pathmemo.sqlite"
    first = value_hash(data, memo=PathMemo(location))
    # Same key, other bytes: a memo in another object (and another process) trusts the key,
    # which proves the file was not read again; without the memo the change is seen.
    _rewrite_in_place_keeping_size_and_mtime(data, b"b" * 1000)
    script = (
        "import sys, pathlib\n"
        "from provtask.hashing import PathMemo, value_hash\n"
        "print(value_hash(pathlib.Path(sys.argv[1]), memo=PathMemo(sys.argv[2])))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(data), str(location)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == first, done.stderr
    assert value_hash(data, memo=pickle.loads(pickle.dumps(PathMemo(location)))) == first
    assert value_hash(data) != first
    # Any change of the key makes the memo read the file again.
    data.write_bytes(b"b" * 1001)
    _age(data)
    assert value_hash(data, memo=PathMemo(location)) == value_hash(data)


def test_memo_does_not_trust_a_file_modified_in_the_last_seconds(tmp_path):
    data = tmp_path / "fresh.bin"
    data.write_bytes(b"a" * 100)
    memo = PathMemo(tmp_path / "pathmemo.sqlite")
    first = value_hash(data, memo=memo)
    _rewrite_in_place_keeping_size_and_mtime(data, b"b" * 100)
    assert value_hash(data, memo=memo) != first


def test_an_unusable_memo_location_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("")
    data = tmp_path / "data.txt"
    data.write_text("x")
    with pytest.raises(StoreError, match="cannot open the path memo"):
        value_hash(data, memo=PathMemo(tmp_path / "file" / "pathmemo.sqlite"))


# -- values with no stable hash -------------------------------------------------------------------
def test_an_unsupported_value_is_refused_with_its_type_and_location():
    with pytest.raises(UnhashableValue) as caught:
        value_hash({"params": [1, object()]})
    message = str(caught.value)
    assert "builtins.object" in message
    assert "value['params'][1]" in message
    assert "__provtask_hash__" in message


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (lambda x: x, "function"),
        (np.ma.masked_array([1, 2], mask=[0, 1]), "MaskedArray"),
        (iter([1]), "list_iterator"),
        (Point(1, [2, object()]), "builtins.object"),
    ],
)
def test_functions_iterators_and_array_subclasses_have_no_stable_hash(value, type_name):
    with pytest.raises(UnhashableValue, match=type_name):
        value_hash(value)


def test_a_builtin_subclass_with_instance_attributes_is_refused():
    class Tagged(int):
        pass

    plain = Tagged(3)
    assert value_hash(plain) != value_hash(3)
    plain.note = "state the hash would not see"
    with pytest.raises(UnhashableValue, match="instance attributes"):
        value_hash(plain)


def test_a_value_that_contains_itself_is_refused():
    loop: list = [1]
    loop.append(loop)
    with pytest.raises(UnhashableValue, match="contains itself"):
        value_hash(loop)


def test_hash_arguments_names_the_argument_and_offers_the_ways_out():
    hashes = hash_arguments({"n": 3, "scale": 2.0})
    assert hashes == {"n": value_hash(3), "scale": value_hash(2.0)}
    with pytest.raises(UnhashableValue) as caught:
        hash_arguments({"n": 3, "model": {"weights": object()}})
    message = str(caught.value)
    assert caught.value.argument == "model"
    assert message.startswith("argument 'model':")
    assert "model['weights']" in message
    assert "cache=False" in message and "cache_key" in message


class Opaque:
    def __init__(self, key: str) -> None:
        self.key = key
        self.cache = {"ephemeral": id(self)}

    def __provtask_hash__(self) -> str:
        return self.key


class Broken:
    def __provtask_hash__(self) -> int:
        return 1


def test_objects_opt_in_with_provtask_hash():
    assert value_hash(Opaque("k")) == value_hash(Opaque("k"))
    assert value_hash(Opaque("k")) != value_hash(Opaque("j"))
    assert value_hash(Opaque("k")) != value_hash("k")
    with pytest.raises(UnhashableValue, match="must return bytes or str"):
        value_hash(Broken())
