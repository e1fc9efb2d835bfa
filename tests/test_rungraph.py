"""RunGraph as pure bookkeeping: readiness, success, failure propagation and map expansion."""

from __future__ import annotations

import pytest

from provtask import DAG, TaskState, task
from provtask.dag import Ref
from provtask.engine.rungraph import Instance, RunGraph
from provtask.hashing import combine, value_hash

S = TaskState


@task
def make_list(n=3):
    return list(range(n))


@task
def square(x):
    return x * x


@task
def add(x, y):
    return x + y


@task
def total(xs):
    return sum(xs)


@task
def step(x=None):
    return x


def graph_of(dag: DAG, params: dict | None = None) -> RunGraph:
    return RunGraph(dag, dag.resolve_params(params))


def pop_ready(graph: RunGraph) -> list[str]:
    """Drain the ready queue like the engine: expand maps, return ids of what would run."""
    runnable = []
    while graph.ready:
        inst = graph.ready.popleft()
        if inst.kind == "map":
            graph.expand(inst)
        else:
            runnable.append(inst.task_id)
    return runnable


def finish(graph: RunGraph, task_id: str, n_items: int | None = None) -> Instance:
    inst = graph.instances[task_id]
    inst.output_hash = value_hash(task_id)
    inst.n_items = n_items
    graph.succeed(inst)
    return inst


def states(graph: RunGraph) -> dict[str, TaskState]:
    return {task_id: inst.state for task_id, inst in graph.instances.items()}


# -- readiness ---------------------------------------------------------------------------------
def test_initial_ready_set_is_the_tasks_without_prerequisites():
    with DAG("d") as dag:
        a = step(1)
        b = step(2)
        c = add(a, b)
        d = step(3)
        b >> d  # order edge: d waits for b although no data flows
        step(c)
    graph = graph_of(dag)
    assert set(pop_ready(graph)) == {"step", "step-1"}
    assert all(inst.state is S.PENDING for inst in graph.instances.values())


def test_succeed_releases_dependents_once_all_prerequisites_are_done():
    with DAG("d") as dag:
        a = step(1)
        b = step(2)
        c = add(a, b)
        b >> step(3)
        step(c)
    graph = graph_of(dag)
    pop_ready(graph)
    finish(graph, "step")
    assert pop_ready(graph) == []  # add still waits for step-1
    finish(graph, "step-1")
    assert sorted(pop_ready(graph)) == ["add", "step-2"]
    finish(graph, "add")
    assert pop_ready(graph) == ["step-3"]
    assert graph.instances["step"].state is S.SUCCESS
    assert graph.instances["step"] in graph.changed


def test_fail_marks_everything_downstream_upstream_failed():
    with DAG("d") as dag:
        a = step(1)
        b = step(2)
        c = add(a, b)
        d = step(c)
        a >> step(4)
        step(b)  # independent of a
    graph = graph_of(dag)
    pop_ready(graph)
    graph.fail(graph.instances["step"], S.FAILED, "ValueError: boom")
    assert graph.instances["step"].state is S.FAILED
    assert graph.instances["step"].attempts.error == "ValueError: boom"
    assert graph.instances["add"].state is S.UPSTREAM_FAILED
    assert graph.instances["add"].attempts.error == "upstream step failed"
    assert graph.instances[d.node_id].state is S.UPSTREAM_FAILED
    assert graph.instances[d.node_id].attempts.error == "upstream add failed"
    assert graph.instances["step-3"].state is S.UPSTREAM_FAILED  # through the order edge
    # the branch that does not depend on the failure goes on
    finish(graph, "step-1")
    assert pop_ready(graph) == ["step-4"]
    assert graph.instances["step-4"].state is S.PENDING


def test_failure_propagates_down_a_long_chain_without_recursion():
    n = 2000
    with DAG("chain") as dag:
        ref = step(0)
        for _ in range(n - 1):
            ref = step(ref)
    dag.validate()
    graph = graph_of(dag)
    assert pop_ready(graph) == ["step"]
    graph.fail(graph.instances["step"], S.FAILED, "boom")
    counts: dict[TaskState, int] = {}
    for inst in graph.instances.values():
        counts[inst.state] = counts.get(inst.state, 0) + 1
    assert counts == {S.FAILED: 1, S.UPSTREAM_FAILED: n - 1}
    assert graph.instances[f"step-{n - 1}"].attempts.error == f"upstream step-{n - 2} failed"
    assert pop_ready(graph) == []


def test_success_down_a_long_chain():
    n = 2000
    with DAG("chain") as dag:
        ref = step(0)
        for _ in range(n - 1):
            ref = step(ref)
    graph = graph_of(dag)
    done = 0
    while ready := pop_ready(graph):
        (task_id,) = ready
        finish(graph, task_id)
        done += 1
    assert done == n
    assert all(inst.state is S.SUCCESS for inst in graph.instances.values())


def test_cancel_unfinished_leaves_finished_tasks_alone():
    with DAG("d") as dag:
        a = step(1)
        step(a)
        step(2)
    graph = graph_of(dag)
    pop_ready(graph)
    finish(graph, "step")
    cancelled = graph.cancel_unfinished()
    assert {i.task_id for i in cancelled} == {"step-1", "step-2"}
    assert states(graph) == {"step": S.SUCCESS, "step-1": S.CANCELLED, "step-2": S.CANCELLED}


# -- maps --------------------------------------------------------------------------------------
def test_map_over_a_static_list():
    with DAG("m") as dag:
        squares = square.map([1, 2, 3])
        total(squares)
    graph = graph_of(dag)
    assert pop_ready(graph) == ["square[0]", "square[1]", "square[2]"]
    node = graph.instances["square"]
    assert node.kind == "map" and node.state is S.RUNNING and not node.counted
    assert [c.node.args for c in node.children] == [(1,), (2,), (3,)]
    assert all(c.kind == "element" and c.node.parent is node and c.counted for c in node.children)
    finish(graph, "square[0]")
    finish(graph, "square[2]")
    assert node.state is S.RUNNING
    assert pop_ready(graph) == []  # total needs every element
    finish(graph, "square[1]")
    assert node.state is S.SUCCESS
    assert node.output_hash == combine([c.output_hash for c in node.children])
    assert pop_ready(graph) == ["total"]


def test_map_over_a_range_and_a_param():
    with DAG("m", params={"temps": [300, 310]}) as dag:
        square.map(range(2))
        square.map(dag.param("temps"))
    graph = graph_of(dag)
    pop_ready(graph)
    assert [c.node.args for c in graph.instances["square"].children] == [(0,), (1,)]
    assert [c.node.args for c in graph.instances["square-1"].children] == [(300,), (310,)]

    overridden = graph_of(dag, {"temps": [1, 2, 3]})
    pop_ready(overridden)
    assert [c.node.args for c in overridden.instances["square-1"].children] == [(1,), (2,), (3,)]


def test_map_over_an_upstream_ref_uses_its_n_items():
    with DAG("m") as dag:
        items = make_list()
        squares = square.map(items)
        total(squares)
    graph = graph_of(dag)
    assert pop_ready(graph) == ["make_list"]
    assert graph.instances["square"].state is S.PENDING
    finish(graph, "make_list", n_items=4)
    assert pop_ready(graph) == [f"square[{i}]" for i in range(4)]
    children = graph.instances["square"].children
    # each element receives the whole upstream output plus which item to pick
    assert all(c.node.args == (Ref(dag, "make_list"),) for c in children)
    assert [c.node.picks for c in children] == [((0, i),) for i in range(4)]
    assert ("make_list", "square[3]", "data") in graph.new_edges
    for child in children:
        finish(graph, child.task_id)
    assert pop_ready(graph) == ["total"]


def test_map_zips_several_iterables():
    with DAG("m") as dag:
        items = make_list()
        add.map(items, [10, 20])
    graph = graph_of(dag)
    pop_ready(graph)
    finish(graph, "make_list", n_items=2)
    assert pop_ready(graph) == ["add[0]", "add[1]"]
    first, second = graph.instances["add"].children
    assert first.node.args == (Ref(dag, "make_list"), 10) and first.node.picks == ((0, 0),)
    assert second.node.args == (Ref(dag, "make_list"), 20) and second.node.picks == ((0, 1),)


def test_chained_maps_run_element_wise():
    with DAG("m") as dag:
        squares = square.map([1, 2, 3])
        plus = add.map(squares, [10, 20, 30])
        total(plus)
    graph = graph_of(dag)
    # the second map expands as soon as the first has elements, not when it has finished
    assert pop_ready(graph) == ["square[0]", "square[1]", "square[2]"]
    second = graph.instances["add"]
    assert second.state is S.RUNNING and len(second.children) == 3
    assert second.children[1].node.args == (Ref(dag, "square[1]"), 20)
    assert ("square[1]", "add[1]", "data") in graph.new_edges
    finish(graph, "square[1]")
    assert pop_ready(graph) == ["add[1]"]  # only the matching element is released
    finish(graph, "add[1]")
    finish(graph, "square[0]")
    finish(graph, "square[2]")
    assert sorted(pop_ready(graph)) == ["add[0]", "add[2]"]
    finish(graph, "add[0]")
    assert pop_ready(graph) == []
    finish(graph, "add[2]")
    assert pop_ready(graph) == ["total"]
    assert graph.instances["square"].state is S.SUCCESS
    assert second.state is S.SUCCESS


def test_chained_map_element_after_a_failed_element_is_upstream_failed():
    with DAG("m") as dag:
        squares = square.map([1, 2])
        plus = square.map(squares)
        total(plus)
    graph = graph_of(dag)
    pop_ready(graph)
    graph.fail(graph.instances["square[0]"], S.FAILED, "boom")
    assert graph.instances["square-1[0]"].state is S.UPSTREAM_FAILED
    finish(graph, "square[1]")
    assert graph.instances["square"].state is S.FAILED  # a map with a failed element failed
    assert pop_ready(graph) == ["square-1[1]"]  # the healthy element still runs
    assert graph.instances["total"].state is S.PENDING
    finish(graph, "square-1[1]")
    assert graph.instances["square-1"].state.finished
    assert not graph.instances["square-1"].state.ok
    assert graph.instances["total"].state is S.UPSTREAM_FAILED
    assert pop_ready(graph) == []


def test_failed_element_fails_its_map_after_the_others_finish():
    with DAG("m") as dag:
        squares = square.map([1, 2, 3])
        total(squares)
        step(5)
    graph = graph_of(dag)
    pop_ready(graph)
    graph.fail(graph.instances["square[1]"], S.FAILED, "boom")
    node = graph.instances["square"]
    assert node.state is S.RUNNING  # siblings are still running
    finish(graph, "square[0]")
    finish(graph, "square[2]")
    assert node.state is S.FAILED
    assert node.attempts.error == "an element of this map did not succeed"
    assert graph.instances["total"].state is S.UPSTREAM_FAILED
    assert graph.instances["square[0]"].state is S.SUCCESS
    assert graph.instances["step"].state is S.PENDING


def test_map_state_does_not_depend_on_which_element_finishes_last():
    def run(upstream_failure_last: bool) -> TaskState:
        with DAG("m") as dag:
            squares = square.map([1, 2])
            square.map(squares)
        graph = graph_of(dag)
        pop_ready(graph)
        if upstream_failure_last:
            finish(graph, "square[1]")
            finish(graph, "square-1[1]")
            graph.fail(graph.instances["square[0]"], S.FAILED, "boom")
        else:
            graph.fail(graph.instances["square[0]"], S.FAILED, "boom")
            finish(graph, "square[1]")
            finish(graph, "square-1[1]")
        assert graph.instances["square-1[0]"].state is S.UPSTREAM_FAILED
        return graph.instances["square-1"].state

    assert run(upstream_failure_last=True) is S.UPSTREAM_FAILED
    assert run(upstream_failure_last=False) is S.UPSTREAM_FAILED


def test_map_over_a_failed_upstream_never_expands():
    with DAG("m") as dag:
        items = make_list()
        squares = square.map(items)
        square.map(squares)
    graph = graph_of(dag)
    pop_ready(graph)
    graph.fail(graph.instances["make_list"], S.FAILED, "boom")
    assert graph.instances["square"].state is S.UPSTREAM_FAILED
    assert graph.instances["square-1"].state is S.UPSTREAM_FAILED
    assert graph.instances["square"].children == []
    assert pop_ready(graph) == []


def test_map_over_an_output_that_is_not_a_list_fails_clearly():
    with DAG("m") as dag:
        items = make_list()
        squares = square.map(items)
        total(squares)
    graph = graph_of(dag)
    pop_ready(graph)
    finish(graph, "make_list", n_items=None)  # the output was, say, a dict
    assert pop_ready(graph) == []
    node = graph.instances["square"]
    assert node.state is S.FAILED
    assert node.attempts.error == (
        "square.map() cannot fan out over the output of make_list: it is not a list or tuple"
    )
    assert node.children == []
    assert graph.instances["total"].state is S.UPSTREAM_FAILED


def test_map_over_a_param_that_is_not_a_list_fails_clearly():
    with DAG("m", params={"temps": [1, 2]}) as dag:
        square.map(dag.param("temps"))
    graph = graph_of(dag, {"temps": 5})
    assert pop_ready(graph) == []
    assert graph.instances["square"].state is S.FAILED
    assert "argument 0: it is not a list or tuple" in graph.instances["square"].attempts.error


def test_map_with_mismatched_lengths_fails_clearly():
    with DAG("m") as dag:
        items = make_list()
        sums = add.map([1, 2, 3], items)
        total(sums)
    graph = graph_of(dag)
    pop_ready(graph)
    finish(graph, "make_list", n_items=2)
    assert pop_ready(graph) == []
    node = graph.instances["add"]
    assert node.state is S.FAILED
    assert node.attempts.error == "add.map() iterables have different lengths [3, 2]"
    assert graph.instances["total"].state is S.UPSTREAM_FAILED


@pytest.mark.parametrize("build", ["static", "upstream"])
def test_empty_map_succeeds_and_releases_dependents(build):
    with DAG("m") as dag:
        iterable = [] if build == "static" else make_list(0)
        squares = square.map(iterable)
        chained = square.map(squares)
        total(squares)
        total(chained)
    graph = graph_of(dag)
    if build == "upstream":
        assert pop_ready(graph) == ["make_list"]
        finish(graph, "make_list", n_items=0)
    assert sorted(pop_ready(graph)) == ["total", "total-1"]
    for node_id in ("square", "square-1"):
        assert graph.instances[node_id].state is S.SUCCESS
        assert graph.instances[node_id].children == []
        assert graph.instances[node_id].output_hash == combine([])


# -- inputs and their identities ---------------------------------------------------------------
def test_describe_inputs_is_readable():
    with DAG("m", params={"n": 3}) as dag:
        items = make_list(dag.param("n"))
        add(items, y={"scale": 2})
        square.map(items)
    graph = graph_of(dag)
    pop_ready(graph)

    described, _ = graph.describe_inputs(graph.instances["make_list"])
    assert described == [{"name": "n", "hash": value_hash(3), "param": "n", "repr": "3"}]

    finish(graph, "make_list", n_items=3)
    pop_ready(graph)
    described, _ = graph.describe_inputs(graph.instances["add"])
    upstream = graph.instances["make_list"].output_hash
    assert described == [
        {"name": "x", "hash": upstream, "task": "make_list"},
        {"name": "y", "hash": value_hash({"scale": 2}), "repr": "{'scale': 2}"},
    ]

    described, _ = graph.describe_inputs(graph.instances["square[2]"])
    assert described == [
        {"name": "x", "hash": combine([upstream, "2"]), "task": "make_list", "item": 2}
    ]


def test_describe_inputs_of_refs_nested_in_containers():
    with DAG("m") as dag:
        a = step(1)
        b = step(2)
        total([a, b, 3])
    graph = graph_of(dag)
    finish(graph, "step")
    finish(graph, "step-1")
    (entry,), _ = graph.describe_inputs(graph.instances["total"])
    assert entry["name"] == "xs"
    assert entry["tasks"] == ["step", "step-1"]


def input_hash(values: list, upstream_hash: str = "h") -> tuple[str, str]:
    with DAG("m") as dag:
        a = step(1)
        total([a, values])
        square.map(values)
    graph = graph_of(dag)
    graph.instances["step"].output_hash = upstream_hash
    graph.succeed(graph.instances["step"])
    pop_ready(graph)
    _, call_hash = graph.describe_inputs(graph.instances["total"])
    _, element_hash = graph.describe_inputs(graph.instances["square[0]"])
    return call_hash, element_hash


def test_input_hash_is_stable_and_tracks_inputs():
    first = input_hash([1, {"a": [1, 2]}])
    assert input_hash([1, {"a": [1, 2]}]) == first  # a fresh graph of the same DAG
    assert input_hash([1, {"a": [1, 3]}])[0] != first[0]  # a constant changed
    assert input_hash([1.0, {"a": [1, 2]}])[1] != first[1]  # 1.0 is not 1
    assert input_hash([1, {"a": [1, 2]}], upstream_hash="other")[0] != first[0]
    assert input_hash([1, {"a": [1, 2]}], upstream_hash="other")[1] == first[1]
    assert all(len(h) == 64 for h in first)


def test_input_hash_names_the_arguments():
    """Swapping the values of two arguments changes the identity."""

    def digest(x, y):
        with DAG("m") as dag:
            add(x, y)
        graph = graph_of(dag)
        return graph.describe_inputs(graph.instances["add"])[1]

    assert digest(1, 2) != digest(2, 1)
    assert digest(1, 2) == digest(1, 2)


# -- freeing worker memory ---------------------------------------------------------------------
def test_futures_are_dropped_once_every_data_consumer_has_finished():
    with DAG("r") as dag:
        x = step(1)
        step(x)
        add(x, 2)
        step(3)  # a sink: nobody reads its output
        squares = square.map([1, 2])
        total(squares)
    graph = graph_of(dag)
    pop_ready(graph)
    for inst in graph.instances.values():
        inst.attempts.future = object()  # stand-ins for Dask futures

    def done(task_id: str) -> None:
        finish(graph, task_id)  # the graph lets go of data as each task finishes

    done("step")
    assert graph.instances["step"].attempts.future is not None  # two consumers still to run
    pop_ready(graph)
    graph.instances["step-1"].attempts.future = object()
    graph.instances["add"].attempts.future = object()
    done("step-1")
    assert graph.instances["step-1"].attempts.future is None  # a sink's value is not needed again
    assert graph.instances["step"].attempts.future is not None
    done("add")
    assert graph.instances["step"].attempts.future is None

    done("square[0]")
    done("square[1]")
    assert graph.instances["square[0]"].attempts.future is not None  # total still has to read them
    pop_ready(graph)
    graph.instances["total"].attempts.future = object()
    done("total")
    assert [c.attempts.future for c in graph.instances["square"].children] == [None, None]


def test_an_upstream_failed_consumer_also_releases_its_inputs():
    with DAG("r") as dag:
        x = step(1)
        y = step(2)
        add(x, y)
    graph = graph_of(dag)
    pop_ready(graph)
    graph.instances["step"].attempts.future = object()
    finish(graph, "step")
    graph.fail(graph.instances["step-1"], S.FAILED, "boom")
    assert graph.instances["add"].state is S.UPSTREAM_FAILED
    assert graph.instances["step"].attempts.future is None  # add finished without reading it
