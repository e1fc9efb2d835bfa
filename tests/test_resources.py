"""Resource requests: parsing sizes and durations, and rejecting bad requests at decoration time."""

from __future__ import annotations

import math

import pytest

from provtask import DAG, ResourceError, mpi_task, task
from provtask.errors import DAGError
from provtask.resources import format_walltime, make_resources, parse_memory, parse_walltime
from provtask.tasks import TaskDef

GB = 1000**3
GiB = 1024**3
MiB = 1024**2


# -- memory ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4GB", 4 * GB),
        ("4gb", 4 * GB),
        ("2G", 2 * GB),
        (" 8 GB ", 8 * GB),
        ("512MiB", 512 * MiB),
        ("512MB", 512 * 1000**2),
        ("2GiB", 2 * GiB),
        ("1.5GiB", int(1.5 * GiB)),
        ("100KB", 100_000),
        ("64KiB", 64 * 1024),
        ("1TB", 1000**4),
        ("1TiB", 1024**4),
        ("123", 123),
        ("123B", 123),
        (1024, 1024),
    ],
)
def test_parse_memory_accepts_common_spellings(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("bad", ["lots", "", "4XB", "GB", "-1GB", "4 G B", "0GB", 0, -5, True, 4.5])
def test_parse_memory_rejects_bad_values_naming_the_field(bad):
    with pytest.raises(ResourceError, match=r"^memory: "):
        parse_memory(bad)


# -- walltime ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("01:00:00", 3600),
        ("00:05:00", 300),
        ("02:30:15", 2 * 3600 + 30 * 60 + 15),
        ("25:00:00", 25 * 3600),  # more than a day in hours is fine
        ("1-00:00:00", 86400),
        ("2-12:00:00", 2 * 86400 + 12 * 3600),
        ("90:00", 90 * 60),  # MM:SS
        ("3600", 3600),  # seconds as text (CLI, config files)
        ("1h", 3600),
        ("1.5h", 5400),
        ("2hr", 7200),
        ("90m", 5400),
        ("30min", 1800),
        ("45s", 45),
        ("10sec", 10),
        ("1d", 86400),
        ("1H", 3600),
        (3600, 3600),
        (90.0, 90),
    ],
)
def test_parse_walltime_accepts_common_spellings(text, expected):
    assert parse_walltime(text) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "25:99:00",  # 99 minutes
        "00:00:60",  # 60 seconds
        "10:75",  # MM:SS with 75 seconds
        "00:00:00",
        "0",
        "0h",
        "soon",
        "1 hour",
        "1w",
        "",
        "1:2:3:4",
        0,
        -60,
        True,
    ],
)
def test_parse_walltime_rejects_bad_values_naming_the_field(bad):
    with pytest.raises(ResourceError, match=r"^walltime: "):
        parse_walltime(bad)


@pytest.mark.parametrize("tiny", [0.4, "0.4s"])
def test_sub_second_walltime_is_refused_not_turned_into_zero(tiny):
    with pytest.raises(ResourceError, match=r"^walltime: must be at least one second"):
        parse_walltime(tiny)


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_walltime_is_a_resource_error(value):
    with pytest.raises(ResourceError, match=r"^walltime: "):
        parse_walltime(value)


def test_format_walltime_gives_hours_beyond_a_day():
    assert format_walltime(3600) == "01:00:00"
    assert format_walltime(25 * 3600 + 61) == "25:01:01"
    assert format_walltime(parse_walltime("1-00:00:00")) == "24:00:00"


# -- make_resources ----------------------------------------------------------------------------
def test_make_resources_defaults_and_conversions():
    res = make_resources(memory="4GB", walltime="1h", partition="gpu-a100", gpus=2, retries=3)
    assert res.memory == 4 * GB
    assert res.walltime == 3600
    assert res.partition == "gpu-a100"
    assert (res.gpus, res.retries, res.nodes, res.cpus_per_task) == (2, 3, 1, 1)
    assert res.to_record() == {
        "partition": "gpu-a100",
        "nodes": 1,
        "ntasks_per_node": 1,
        "cpus_per_task": 1,
        "gpus": 2,
        "memory": 4 * GB,
        "walltime": 3600,
        "retries": 3,
    }


def test_unknown_field_is_named_with_the_known_ones():
    with pytest.raises(ResourceError, match="unknown resource field 'memroy'") as info:
        make_resources(memroy="4GB")
    assert "(did you mean 'memory'?)" in str(info.value)


def test_every_error_of_one_task_is_reported_at_once():
    with pytest.raises(ResourceError) as info:
        make_resources(memory="lots", walltime="forever", cpus_per_task=0, gpu=1)
    message = str(info.value)
    for part in (
        "unknown resource field 'gpu' (did you mean 'gpus'?)",
        "cpus_per_task: expected an integer >= 1, got 0",
        "memory: cannot read 'lots' as a size",
        "walltime: cannot read 'forever' as a duration",
    ):
        assert part in message


# -- decoration-time validation ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"memory": "lots"}, "memory"),
        ({"walltime": "25:99:00"}, "walltime"),
        ({"gpus": -1}, "gpus"),
        ({"retries": -1}, "retries"),
        ({"retries": 1.5}, "retries"),
        ({"cpus_per_task": 0}, "cpus_per_task"),
        ({"cpus_per_task": "4"}, "cpus_per_task"),
        ({"partition": "gpu queue"}, "partition"),
        ({"partition": "a;rm -rf"}, "partition"),
        ({"nodes": 2}, "nodes"),
        ({"ntasks_per_node": 4}, "ntasks_per_node"),
        ({"launcher": "srun"}, "launcher"),
        ({"memroy": "4GB"}, "memroy"),
        ({"name": "not a name"}, "name"),
    ],
)
def test_task_rejects_bad_resources_at_decoration(kwargs, field):
    with pytest.raises(ResourceError, match=field):

        @task(**kwargs)
        def f():
            return 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"launcher": "foo"}, "launcher"),
        ({"nodes": 0}, "nodes"),
        ({"ntasks_per_node": -2}, "ntasks_per_node"),
        ({"walltime": "1 fortnight"}, "walltime"),
    ],
)
def test_mpi_task_rejects_bad_resources_at_decoration(kwargs, field):
    with pytest.raises(ResourceError, match=field):

        @mpi_task(**kwargs)
        def f():
            return 1


def test_resource_error_is_a_value_error_with_exit_code_2():
    with pytest.raises(ValueError) as info:
        task(memory="lots")
    assert info.value.exit_code == 2


def test_mpi_task_takes_nodes_and_launcher():
    @mpi_task(nodes=2, ntasks_per_node=4, launcher="srun", walltime="00:30:00")
    def solver(x):
        return x

    assert solver.kind == "mpi"
    assert solver.resources.ranks == 8
    assert solver.resources.launcher == "srun"
    assert solver.resources.walltime == 1800


def test_task_with_and_without_parentheses():
    @task
    def bare(x):
        """Doubles."""
        return 2 * x

    @task()
    def empty(x):
        return 3 * x

    @task(name="renamed", memory="1GB")
    def named(x):
        return 4 * x

    assert isinstance(bare, TaskDef) and isinstance(empty, TaskDef) and isinstance(named, TaskDef)
    assert (bare.name, empty.name, named.name) == ("bare", "empty", "renamed")
    assert bare.kind == "python"
    assert bare.__doc__ == "Doubles."  # functools metadata is kept
    assert bare.resources == make_resources()
    assert named.resources.memory == GB


def test_task_must_decorate_a_callable():
    with pytest.raises(ResourceError, match="function"):
        task("not a function")


def test_calling_a_task_outside_a_dag_runs_the_plain_function():
    calls = []

    @task(memory="1GB")
    def add(a, b=10):
        calls.append((a, b))
        return a + b

    assert add(1) == 11
    assert add(1, b=2) == 3
    assert add.map([1, 2, 3]) == [11, 12, 13]
    assert add.map([1, 2], [5, 6]) == [6, 8]
    assert add.map([1, 2], b=0) == [1, 2]
    assert calls == [(1, 10), (1, 2), (1, 10), (2, 10), (3, 10), (1, 5), (2, 6), (1, 0), (2, 0)]


def test_outside_a_dag_map_with_unequal_lengths_fails():
    @task
    def pair(a, b):
        return (a, b)

    with pytest.raises(ValueError):
        pair.map([1, 2], [1])


# -- options -----------------------------------------------------------------------------------
def test_options_returns_a_changed_copy():
    @task(memory="1GB", walltime="01:00:00", retries=2)
    def work(x):
        return x + 1

    bigger = work.options(memory="8GB")
    assert bigger is not work
    assert bigger.resources.memory == 8 * GB
    assert bigger.resources.walltime == 3600  # untouched fields are kept
    assert bigger.resources.retries == 2
    assert work.resources.memory == GB  # the original is unchanged
    assert bigger.name == "work"
    assert bigger.code_hash == work.code_hash
    assert bigger(1) == 2


def test_options_validates_like_the_decorator():
    @task
    def work():
        return 1

    with pytest.raises(ResourceError, match="memory"):
        work.options(memory="lots")
    with pytest.raises(ResourceError, match="walltime"):
        work.options(walltime="25:99:00")
    with pytest.raises(ResourceError, match="gpus"):
        work.options(gpus=-1)
    with pytest.raises(ResourceError, match="unknown resource field"):
        work.options(colour="blue")
    with pytest.raises(ResourceError, match="name"):
        work.options(name="other")
    with pytest.raises(DAGError, match="id"):
        work.options(id="has space")


@pytest.mark.parametrize("override", [{"nodes": 4}, {"ntasks_per_node": 8}, {"launcher": "srun"}])
def test_options_cannot_turn_a_python_task_into_an_mpi_job(override):
    @task
    def work():
        return 1

    with pytest.raises(ResourceError):
        work.options(**override)


def test_options_on_mpi_task_can_change_ranks():
    @mpi_task(nodes=1, ntasks_per_node=2)
    def solver():
        return 1

    wide = solver.options(nodes=4, launcher="mpirun")
    assert wide.resources.ranks == 8
    assert wide.resources.launcher == "mpirun"
    assert wide.kind == "mpi"


def test_options_id_is_used_as_node_id_inside_a_dag():
    @task
    def work(x):
        return x

    with DAG("ids") as dag:
        ref = work.options(id="first")(1)
    assert ref.node_id == "first"
    assert "first" in dag.graph
